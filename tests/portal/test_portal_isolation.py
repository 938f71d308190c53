"""The isolation matrix: every portal route, signed in as patient A, with the id of an object belonging to
ANOTHER patient (of the same clinic, and of another clinic), answers 404 and changes nothing.

Which routes: enumerated at run time from `app.url_map`: every rule whose URL starts with /portal, plus every
rule whose access policy opens it to patients only (`policy.roles == {patient}`), wherever it is mounted (the
sharing blueprint serves the patient's shares and notifications under /portal, a new blueprint might not).
Staff routes that a patient cannot open are the route × role matrix's business (tests/test_access.py).

How: `ARGUMENTS` maps each URL argument NAME to a factory that makes that kind of object for a given patient
and returns the value to put in the URL. A route with an argument name missing from the registry FAILS
(`test_every_portal_argument_has_a_factory`), so a new route cannot slip through: add one entry per name.
For each route × method (GET, and every POST the rule allows, CSRF-valid, with and without `HX-Request`) the
answer must be 404 and a fingerprint of every table (its rows, audit rows excepted: the denial may be audited)
must be the same before and after.

Second part: every POST route with no URL argument (the ones that act on "my" things) gets a form field
`patient_id` (and an hx-vals-like `hx_patient_id`) naming patient B: nothing that the request did may land on
patient B (B's rows are fingerprinted before and after).
"""

from __future__ import annotations

import hashlib
import io
import itertools
import re
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta

import pytest
from flask import current_app
from sqlalchemy import select

from healthcrm.access import policy_for
from healthcrm.accounts.models import PATIENT, Tenant, User
from healthcrm.audit.services import Actor
from healthcrm.clock import utcnow
from healthcrm.extensions import db
from healthcrm.files import patient_files
from healthcrm.files.storage import get_storage
from healthcrm.patients.models import Patient
from healthcrm.portal.messages import services as messages
from healthcrm.portal.models import Notification
from healthcrm.portal.profile import services as profile
from healthcrm.records.models import FINALIZED, MedicalRecord
from healthcrm.scheduling.models import (
    BOOKED,
    HELD,
    HOLD_OFFER,
    OFFERED,
    Appointment,
    AppointmentType,
    WaitlistEntry,
    WaitlistOffer,
)
from healthcrm.tenant_scope import all_tenants
from tests.factories import login, make_portal_user, make_tenant, make_user
from tests.files import samples
from tests.sharing.factories import SECOND_VISIT, add_lab, make_shared_patient

HX = {"HX-Request": "true"}
# Tables the denial itself may write to: the audit trail, and the signed-in person's session bookkeeping (its
# last-seen time is refreshed now and then, whatever the page; on a slow database it happens mid-matrix).
MAY_CHANGE = {"audit_log", "audit_chain_heads", "user_sessions"}
# The code list no request writes (on PostgreSQL it holds the whole ICD-10-CM list: hashing it per request
# would be most of this test's time).
REFERENCE = {"icd10_codes"}


@dataclass
class Owner:
    """The patient whose objects a factory makes, with their portal user and a doctor of their clinic."""

    patient: Patient
    user: User
    doctor: User

    @property
    def actor(self) -> Actor:
        return Actor(tenant_id=self.user.tenant_id, user_id=self.user.id, role=PATIENT)


def _record_id(owner: Owner) -> str:
    with all_tenants("test"):
        record = db.session.scalar(
            select(MedicalRecord).where(
                MedicalRecord.patient_id == owner.patient.id, MedicalRecord.status == FINALIZED
            )
        )
    return str(record.id)


def _lab_key(owner: Owner) -> str:
    # A test only the other patient has (code unique to this test), released at once.
    add_lab(owner.patient, "99999-9", "Isolation marker", 5.0, "mg/dL", SECOND_VISIT, 1, 10)
    return "99999-9"


def _attachment_id(owner: Owner) -> str:
    document = patient_files.store_patient_file(
        owner.actor, owner.patient.id, "theirs.pdf", io.BytesIO(samples.pdf()), source=patient_files.PORTAL
    )
    return str(document.id)


def _thread_id(owner: Owner) -> str:
    thread = messages.start_thread(owner.actor, owner.patient.id, subject="Theirs", body="Their message.")
    return str(thread.id)


def _notification_id(owner: Owner) -> str:
    notice = Notification(tenant_id=owner.user.tenant_id, user_id=owner.user.id, text="Their notice")
    db.session.add(notice)
    db.session.commit()
    return str(notice.id)


def _contact_id(owner: Owner) -> str:
    contact = profile.add_emergency_contact(
        owner.actor,
        owner.patient.id,
        {"name": "Their Contact", "relationship": "Sister", "phone": "555 0100"},
    )
    return str(contact.id)


def _request_id(owner: Owner) -> str:
    request = profile.request_change(
        owner.actor,
        owner.patient.id,
        {
            "first_name": owner.patient.first_name,
            "last_name": "Theirs-Changed",
            "date_of_birth": owner.patient.date_of_birth.isoformat(),
            "sex": owner.patient.sex,
        },
        None,
    )
    return str(request.id)


def _appointment(owner: Owner, status: str = BOOKED) -> Appointment:
    """A booking (or hold) of the patient's with their doctor, days ahead, never overlapping another, of a
    type of its own (one open waitlist entry per patient and type)."""
    n = next(_SLOTS)
    kind = AppointmentType(tenant_id=owner.user.tenant_id, name=f"Check-up {n}", duration_minutes=30)
    db.session.add(kind)
    db.session.flush()
    starts = utcnow().replace(microsecond=0) + timedelta(days=3, hours=n)
    row = Appointment(
        tenant_id=owner.user.tenant_id,
        patient_id=owner.patient.id,
        provider_id=owner.doctor.id,
        type_id=kind.id,
        starts_at=starts,
        ends_at=starts + timedelta(minutes=30),
        blocked_from=starts,
        blocked_until=starts + timedelta(minutes=30),
        status=status,
        hold_expires_at=utcnow() + timedelta(hours=1) if status == HELD else None,
        hold_purpose=HOLD_OFFER if status == HELD else None,
    )
    db.session.add(row)
    db.session.commit()
    return row


_SLOTS = itertools.count()


def _appointment_id(owner: Owner) -> str:
    return str(_appointment(owner).id)


def _hold_id(owner: Owner) -> str:
    return str(_appointment(owner, HELD).id)


def _entry(owner: Owner) -> WaitlistEntry:
    hold = _appointment(owner, HELD)
    entry = WaitlistEntry(
        tenant_id=hold.tenant_id,
        patient_id=owner.patient.id,
        type_id=hold.type_id,
        provider_id=hold.provider_id,
        earliest_day=hold.starts_at.date(),
        latest_day=hold.starts_at.date(),
        status=OFFERED,
    )
    db.session.add(entry)
    db.session.flush()
    offer = WaitlistOffer(
        tenant_id=hold.tenant_id,
        entry_id=entry.id,
        hold_id=hold.id,
        provider_id=hold.provider_id,
        type_id=hold.type_id,
        starts_at=hold.starts_at,
        expires_at=hold.hold_expires_at,
    )
    db.session.add(offer)
    db.session.commit()
    return entry


def _entry_id(owner: Owner) -> str:
    return str(_entry(owner).id)


def _offer_id(owner: Owner) -> str:
    entry = _entry(owner)
    return str(db.session.scalar(select(WaitlistOffer.id).where(WaitlistOffer.entry_id == entry.id)))


def _export_job_id(owner: Owner) -> str:
    """A finished export of the owner's record, started by them."""
    from healthcrm.jobs.models import FINISHED, Job

    job = Job(
        id=str(uuid.uuid4()), tenant_id=owner.patient.tenant_id, user_id=owner.user.id,
        kind="patient_export.build", label="Your health record", args=[owner.patient.id, 1],
        status=FINISHED, result={"made": True, "key": f"{owner.patient.tenant_id}/patient-exports/x.zip",
                                 "patient_id": owner.patient.id, "files": 0, "resources": 1},
        finished_at=utcnow(),
    )  # fmt: skip
    db.session.add(job)
    db.session.commit()
    empty_zip = io.BytesIO(b"PK\x05\x06" + bytes(18))
    get_storage(current_app).put_stream(job.result["key"], empty_zip, "application/zip")
    return job.id


# One entry per URL argument name: how to make that kind of object for a patient. Add yours here.
ARGUMENTS: dict[str, Callable[[Owner], str]] = {
    "record_id": _record_id,
    "key": _lab_key,
    "attachment_id": _attachment_id,
    "thread_id": _thread_id,
    "notification_id": _notification_id,
    "contact_id": _contact_id,
    "request_id": _request_id,
    "appointment_id": _appointment_id,
    "hold_id": _hold_id,
    "entry_id": _entry_id,
    "offer_id": _offer_id,
    "job_id": _export_job_id,
}


def portal_rules(app):
    for rule in app.url_map.iter_rules():
        if rule.endpoint == "static":
            continue
        policy = policy_for(rule.endpoint)
        patients_only = policy is not None and not policy.public and policy.roles == frozenset({PATIENT})
        if rule.rule.startswith("/portal") or patients_only:
            yield rule


def _methods(rule) -> list[str]:
    return sorted(rule.methods - {"HEAD", "OPTIONS"})


def _owner(tenant: Tenant) -> Owner:
    doctor = make_user(tenant, "doctor")
    patient = make_shared_patient(tenant, doctor)
    return Owner(patient=patient, user=make_portal_user(patient), doctor=doctor)


@pytest.fixture
def people(app, inline_jobs):
    home = make_tenant()
    me = _owner(home)
    neighbour = _owner(home)
    stranger = _owner(make_tenant(name="Other Clinic"))
    return {"me": me, "neighbour": neighbour, "stranger": stranger}


def _fingerprint(only: Owner | None = None) -> dict[str, str]:
    """A hash of every row of every table (or, with `only`, of the rows that carry that patient's id or that
    patient's user id)."""
    prints = {}
    with all_tenants("test"):
        for table in db.metadata.sorted_tables:
            if table.name in MAY_CHANGE or table.name in REFERENCE:
                continue
            query = select(table)
            if only is not None:
                if "patient_id" in table.c:
                    query = query.where(table.c.patient_id == only.patient.id)
                elif "user_id" in table.c:
                    query = query.where(table.c.user_id == only.user.id)
                else:
                    continue
            rows = sorted(repr(tuple(row)) for row in db.session.execute(query))
            prints[table.name] = hashlib.sha256("\n".join(rows).encode()).hexdigest()
    return prints


def _changed(before: dict[str, str], after: dict[str, str]) -> list[str]:
    return sorted(name for name in before if before[name] != after.get(name))


def _fill(rule, values: dict[str, str]) -> str:
    url = rule.rule
    for argument in rule.arguments:
        converter = rule._converters[argument]
        prefix = {"IntegerConverter": "int:", "PathConverter": "path:", "UnicodeConverter": ""}.get(
            type(converter).__name__, ""
        )
        for spelling in (f"<{prefix}{argument}>", f"<string:{argument}>", f"<{argument}>"):
            url = url.replace(spelling, values[argument])
    return url


def test_every_portal_argument_has_a_factory(app):
    with app.app_context():
        rules = list(portal_rules(app))
    assert len(rules) > 20, "the portal routes were not found"
    missing = sorted({argument for rule in rules for argument in rule.arguments if argument not in ARGUMENTS})
    assert missing == [], _missing_message(missing, rules)


def _missing_message(missing: list[str], rules) -> str:
    routes = {name: [rule.rule for rule in rules if name in rule.arguments] for name in missing}
    return "; ".join(
        f"add {name} to ARGUMENTS in tests/portal/test_portal_isolation.py "
        f"(a factory that makes that object for another patient; used by {routes[name]})"
        for name in missing
    )


@pytest.mark.parametrize("whose", ["neighbour", "stranger"])
def test_another_patients_object_answers_404_and_changes_nothing(app, client, people, whose):
    rules = [rule for rule in portal_rules(app) if rule.arguments]
    theirs = {name: make(people[whose]) for name, make in ARGUMENTS.items()}
    assert login(client, people["me"].user.email).status_code == 303
    checked = []
    after = _fingerprint()
    for rule in rules:
        missing = sorted(set(rule.arguments) - set(ARGUMENTS))
        assert missing == [], _missing_message(missing, [rule])
        url = _fill(rule, theirs)
        for method in _methods(rule):
            for headers in ({}, HX):
                before = after  # the print after one request is the print before the next
                if method == "GET":
                    response = client.get(url, headers=headers)
                else:
                    assert method == "POST", f"a portal {method} route: add it to this test"
                    response = client.post(url, data={"body": "hi", "text": "x"}, headers=headers)
                after = _fingerprint()
                label = (rule.endpoint, method, url, "htmx" if headers else "plain")
                assert response.status_code == 404, (
                    *label,
                    response.status_code,
                    re.sub(r"(?s).*<main[^>]*>|</main>.*", "", response.get_data(as_text=True))[:400],
                )
                assert "Their message" not in response.get_data(as_text=True), label
                assert _changed(before, after) == [], (*label, _changed(before, after))
                checked.append(label)
    assert len(checked) >= 2 * len(rules)


def test_a_patient_id_in_the_form_is_ignored_by_every_post(app, client, people):
    """Every POST without URL arguments, given patient B's id in the form and in an hx-vals-like field:
    whatever it did, it did not touch patient B's rows."""
    b = people["neighbour"]
    rules = [rule for rule in portal_rules(app) if not rule.arguments and "POST" in rule.methods]
    assert rules, "no portal POST routes found"
    assert login(client, people["me"].user.email).status_code == 303
    fields = {
        "patient_id": str(b.patient.id),
        "hx_patient_id": str(b.patient.id),
        "body": "From the form",
        "subject": "Form subject",
        "text": "x",
        "note": "x",
    }
    for rule in rules:
        for headers in ({}, HX):
            before = _fingerprint(only=b)
            response = client.post(rule.rule, data=fields, headers=headers)
            assert response.status_code < 500, (rule.endpoint, response.status_code)
            after = _fingerprint(only=b)
            assert _changed(before, after) == [], (rule.endpoint, _changed(before, after))
