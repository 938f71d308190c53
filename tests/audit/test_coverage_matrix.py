"""The audit coverage matrix: every route that reads or changes patient data, called by every role its access
policy lets in, writes the audit event that says so, in the request: who (user or share link), in which role,
about which patient, which resource, what, the outcome, and the request's id (the response's X-Request-ID).
Every role the policy refuses gets a 403 that is itself audited (`access.denied`, naming the patient when the
URL names one of the clinic's), and another clinic's ids answer 404, audited as denied too.

The table of routes is tests/audit/coverage_cases.py: every endpoint of `app.url_map` is there, as a case or
as not patient data with its reason (`test_every_endpoint_is_classified`), so a new route cannot escape.
"""

from __future__ import annotations

import io
from collections.abc import Iterator

import pytest
import time_machine
from flask import Flask, current_app
from sqlalchemy import select

from healthcrm.access import policy_for
from healthcrm.accounts.models import ALL_ROLES
from healthcrm.audit.models import AuditEvent
from healthcrm.audit.services import DENIED, SUCCESS
from healthcrm.extensions import db
from tests.audit.coverage_cases import ANY, CASES, NOT_PATIENT_DATA, SAME, Call, Case
from tests.audit.coverage_world import MONDAY_8AM, PROVIDER, Who, World, build_elsewhere, build_world

METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE")
# URL arguments that name one patient's row: a refused request for such a URL is audited with that patient.
PATIENT_NAMING = frozenset(
    {"patient_id", "record_id", "attachment_id", "appointment_id", "hold_id", "thread_id", "share_id",
     "result_id", "task_id", "entry_id", "contact_id"}
)  # fmt: skip


# --- the table is complete ----------------------------------------------------------------------------------


def _rules(app: Flask) -> dict[str, set[str]]:
    """Each endpoint with the methods its rules accept (HEAD and OPTIONS aside)."""
    found: dict[str, set[str]] = {}
    for rule in app.url_map.iter_rules():
        found.setdefault(rule.endpoint, set()).update(rule.methods & set(METHODS))
    return found


def test_every_endpoint_is_classified(app):
    routes = _rules(app)
    covered = {(case.endpoint, case.method) for case in CASES}
    case_endpoints = {endpoint for endpoint, _ in covered}
    problems = []
    for endpoint, methods in sorted(routes.items()):
        if endpoint in NOT_PATIENT_DATA:
            if endpoint in case_endpoints:
                problems.append(f"{endpoint}: both a case and not patient data")
            continue
        if endpoint not in case_endpoints and not any(f"{endpoint} {m}" in NOT_PATIENT_DATA for m in methods):
            problems.append(f"{endpoint}: not classified (add a case or a NOT_PATIENT_DATA entry)")
            continue
        for method in sorted(methods):
            if (endpoint, method) not in covered and f"{endpoint} {method}" not in NOT_PATIENT_DATA:
                problems.append(f"{endpoint} {method}: no case for this method")
    for key in sorted(NOT_PATIENT_DATA):
        endpoint, _, method = key.partition(" ")
        if endpoint not in routes or (method and method not in routes[endpoint]):
            problems.append(f"{key}: in NOT_PATIENT_DATA but no longer a route")
    for endpoint, method in sorted(covered):
        if endpoint not in routes or method not in routes[endpoint]:
            problems.append(f"{endpoint} {method}: a case but no longer a route")
    assert not problems, "\n".join(problems)
    assert all(reason and " " not in reason for reason in NOT_PATIENT_DATA.values())
    assert len({case.id for case in CASES}) == len(CASES), "two cases with the same id: give one a variant"


# --- the world, and one request -----------------------------------------------------------------------------


@pytest.fixture
def world(app, inline_jobs) -> Iterator[World]:
    with time_machine.travel(MONDAY_8AM, tick=True):
        yield build_world(app)


def _allowed(case: Case) -> list[str]:
    """The roles the endpoint's policy lets in (an outside provider for a share link's public pages)."""
    policy = policy_for(case.endpoint)
    if policy.public:
        return [PROVIDER]
    return [role for role in ALL_ROLES if policy.allows(role)]


def _refused(case: Case) -> list[str]:
    policy = policy_for(case.endpoint)
    if policy.public:
        return []
    return [role for role in ALL_ROLES if not policy.allows(role)]


def _send(who: Who, method: str, call: Call):
    headers, body = dict(call.headers), {}
    if call.json is not None:  # the upload API: htmx's way of sending the CSRF token
        body["json"] = call.json
        headers["X-CSRFToken"] = who.client.csrf_token()
    elif call.data is not None:
        # A file in the form is sent as a copy: the client closes what it sends, and a call may be sent again.
        body["data"] = {
            name: (io.BytesIO(value[0].getvalue()), value[1]) if isinstance(value, tuple) else value
            for name, value in call.data.items()
        }
    if method == "POST":  # the client adds the form's CSRF token
        return who.client.post(call.url, headers=headers, **body)
    return who.client.open(call.url, method=method, headers=headers, **body)


def _events_of(response, tenant_id: int) -> list[AuditEvent]:
    request_id = response.headers.get("X-Request-ID", "")
    assert request_id, "the response has no X-Request-ID"
    db.session.rollback()
    return list(
        db.session.scalars(
            select(AuditEvent)
            .where(AuditEvent.tenant_id == tenant_id, AuditEvent.request_id == request_id)
            .order_by(AuditEvent.id)
        )
    )


def _describe(events: list[AuditEvent]) -> str:
    return (
        "; ".join(
            f"{e.action} {e.resource_type}#{e.resource_id} patient={e.patient_id} user={e.actor_user_id} "
            f"role={e.actor_role} link={e.actor_share_link_id} {e.outcome}"
            for e in events
        )
        or "no event"
    )


def _expected_patient(w: World, call: Call, case: Case):
    if call.patient_id is SAME:
        return w.patient.id if case.patient else None
    return call.patient_id


def _mismatches(event: AuditEvent, who: Who, want: dict) -> list[str]:
    found = []
    if who.role == PROVIDER:
        if event.actor_share_link_id != who.share.id or event.actor_user_id is not None:
            found.append(f"actor link {event.actor_share_link_id}/user {event.actor_user_id}")
    elif event.actor_user_id != who.user.id:
        found.append(f"actor_user_id {event.actor_user_id} != {who.user.id}")
    if event.actor_role != who.role:
        found.append(f"actor_role {event.actor_role} != {who.role}")
    for name, expected in want.items():
        value = getattr(event, name)
        if expected is ANY:
            if value in (None, ""):
                found.append(f"{name} not set")
        elif value != expected:
            found.append(f"{name} {value!r} != {expected!r}")
    return found


def _check(w: World, case: Case, who: Who, call: Call, response, *, denied: bool) -> str | None:
    """None when the answer and its audit event are right, else what is wrong."""
    events = _events_of(response, w.tenant.id)
    label = f"{case.id} as {who.role}: {response.status_code}"
    if denied:
        if response.status_code != 403:
            return f"{label}, expected 403 [{_describe(events)}]"
        patient = _expected_patient(w, call, case) if _names_a_patient(case) else None
        want = {"action": "access.denied", "outcome": DENIED, "patient_id": patient}
    else:
        if not 200 <= response.status_code < 400:
            return (
                f"{label}, expected 2xx/3xx [{_describe(events)}] {response.get_data(as_text=True)[:300]!r}"
            )
        resource_id = call.resource_id
        want = {
            "action": case.action,
            "outcome": SUCCESS,
            "resource_type": case.resource_type,
            "resource_id": resource_id,
            "patient_id": _expected_patient(w, call, case),
        }
    candidates = [e for e in events if e.action == want["action"]]
    if not candidates:
        return f"{label}, no {want['action']} event [{_describe(events)}]"
    problems = [_mismatches(event, who, want) for event in candidates]
    if any(not p for p in problems):
        return None
    return f"{label}, {want['action']} event wrong: {', '.join(problems[0])} [{_describe(events)}]"


def _names_a_patient(case: Case) -> bool:
    rules = [r for r in current_app.url_map.iter_rules() if r.endpoint == case.endpoint]
    return any(set(rule.arguments) & PATIENT_NAMING for rule in rules)


def _params(cases: list[Case]):
    return [
        pytest.param(
            case, id=case.id, marks=[pytest.mark.xfail(reason=case.xfail, strict=True)] if case.xfail else []
        )
        for case in cases
    ]


# --- the roles a route lets in: the event is written ------------------------------------------------------


@pytest.mark.parametrize("case", _params(CASES))
def test_each_role_let_in_writes_the_audit_event(app, world, case):
    problems = []
    roles = _allowed(case)
    assert roles, f"{case.id}: no role may call it"
    for role in roles:
        who = world.who(role)
        call = case.build(world, who)
        response = _send(who, case.method, call)
        problem = _check(world, case, who, call, response, denied=role in case.refused_by_service)
        if problem:
            problems.append(problem)
    assert not problems, "\n".join(problems)


# --- the roles a route refuses: 403, audited as denied ----------------------------------------------------


@pytest.mark.parametrize("case", _params(CASES))
def test_each_role_refused_gets_a_403_audited_as_denied(app, world, case):
    if not _refused(case):
        # Only a share link's pages show patient data to whoever holds the link: no role to refuse there.
        assert case.endpoint.startswith("provider."), f"{case.endpoint} is public yet shows patient data"
        return
    problems = []
    # The request a permitted person would make, sent by each of the others (it changes nothing, so one).
    call = case.build(world, world.who(_allowed(case)[0]))
    for role in _refused(case):
        response = _send(world.who(role), case.method, call)
        problem = _check(world, case, world.who(role), call, response, denied=True)
        if problem:
            problems.append(problem)
    assert not problems, "\n".join(problems)


# --- another clinic's ids: 404, audited as denied, naming none of their patients ---------------------------

OTHER_CLINIC = {
    "patient": lambda o: (f"/patients/{o.patient.id}", "patients", o.patient.id),
    "record": lambda o: (f"/records/{o.record.id}", "medical_records", o.record.id),
    "attachment": lambda o: (f"/files/{o.attachment.id}", "attachments", o.attachment.id),
    "file bytes": lambda o: (
        f"/files/{o.attachment.id}/versions/{o.attachment.current_version_id}/download", "attachments",
        o.attachment.id,
    ),
    "appointment": lambda o: (f"/schedule/appointments/{o.appointment.id}", "appointments", o.appointment.id),
    "thread": lambda o: (f"/care/inbox/{o.thread.id}", "message_threads", o.thread.id),
    "share": lambda o: (f"/shares/{o.share.id}", "share_links", o.share.id),
    "lab result": lambda o: (f"/care/results/{o.lab.id}/hold", "lab_results", o.lab.id),
    "labs": lambda o: (f"/patients/{o.patient.id}/labs", "patients", o.patient.id),
    "record form": lambda o: (f"/patients/{o.patient.id}/records/new", "patients", o.patient.id),
    "portal record": lambda o: (f"/portal/records/{o.record.id}", "medical_records", o.record.id),
    "portal thread": lambda o: (f"/portal/messages/{o.thread.id}", "message_threads", o.thread.id),
    "portal visit": lambda o: (f"/portal/appointments/{o.appointment.id}", "appointments", o.appointment.id),
}  # fmt: skip


@pytest.mark.parametrize("what", sorted(OTHER_CLINIC))
def test_another_clinics_id_answers_404_audited_as_denied(app, world, what):
    other = build_elsewhere(app)
    url, table, object_id = OTHER_CLINIC[what](other)
    role = "patient" if url.startswith("/portal") else "admin"
    who = world.who(role)
    response = who.client.get(url)
    assert response.status_code == 404, (what, response.status_code)
    events = _events_of(response, world.tenant.id)
    assert [(e.action, e.outcome, e.actor_user_id, e.actor_role, e.patient_id) for e in events] == [
        ("access.denied", DENIED, who.user.id, role, None)
    ], _describe(events)
    assert (events[0].resource_type, events[0].resource_id) == (table, str(object_id)), _describe(events)
    assert not list(
        db.session.scalars(
            select(AuditEvent).where(
                AuditEvent.tenant_id == other.tenant.id, AuditEvent.request_id == events[0].request_id
            )
        )
    ), "the other clinic's chain got an event of this request"
