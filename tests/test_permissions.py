"""One permission model: the table itself, and that a route's decorator, its service and its page agree."""

from __future__ import annotations

import re
from datetime import datetime

import pytest

from healthcrm import permissions
from healthcrm.access import Policy, policy_for, requires
from healthcrm.accounts.models import ALL_ROLES
from healthcrm.audit.services import Actor
from healthcrm.errors import NotAllowed
from healthcrm.extensions import db
from healthcrm.patients import services as patients
from healthcrm.permissions import AnonymousVisitor, can, require, roles_for
from healthcrm.records import labs
from healthcrm.records import services as records
from healthcrm.records.clinical import clinical_summary
from healthcrm.records.models import MedicalRecord
from tests.factories import login, make_patient, make_portal_user, make_tenant, make_user

# Who may do what, written out by hand as the clinic would say it: a change to the table must change this
# grid too. Columns: admin, doctor, nurse, coach, front desk, patient.
ROLES = ("admin", "doctor", "nurse", "coach", "front_desk", "patient")
GRID = {
    "patient.read":             "X X X X X .",
    "patient.edit":             "X X X . X .",
    "clinical.read":            "X X X X . .",
    "record.read":              "X X X X . .",
    "record.write":             "X X X . . .",
    "record.finalize":          "X X . . . .",
    "record.addendum":          "X X . . . .",
    "record_template.manage":   "X . . . . .",
    "lab.read":                 "X X X X . .",
    "lab.write":                "X X X . . .",
    "attachment.read":          "X X X X . .",
    "attachment.write":         "X X X . . .",
    "share.manage_own":         ". . . . . X",
    "share.manage_for_patient": "X X X X . .",
    "share.overview":           "X . . . . .",
    "audit.read":               "X . . . . .",
    "patient.export":           "X X X . . .",
    "audit.retention":          "X . . . . .",
    "clinic.export":            "X . . . . .",
    "users.manage":             "X . . . . .",
    "outbox.read":              "X . . . . .",
    "jobs.overview":            "X . . . . .",
    "portal.use":               ". . . . . X",
    "care.tasks":               "X X X X X .",
    "care.inbox":               "X X X X X .",
    "care.refills":             "X X X . . .",
    "care.care_plans":          "X X X X . .",
    "care.change_requests":     "X X X . X .",
    "care.registration_codes":  "X X X . X .",
    "result.hold":              "X X . . . .",
    "care.settings":            "X . . . . .",
    "care.report":              "X . . . . .",
    "schedule.calendar":        "X X X X X .",
    "schedule.book":            "X X X . X .",
    "schedule.overbook":        "X X . . X .",
    "schedule.check_in":        "X X X . X .",
    "schedule.settings":        "X . . . . .",
    "schedule.own_hours":       "X X X X . .",
    "storage.view":             "X . . . . .",
    "storage.manage":           "X . . . . .",
}  # fmt: skip
CASES = [
    (permission, role, mark == "X")
    for permission, row in GRID.items()
    for role, mark in zip(ROLES, row.split(), strict=True)
]


def test_the_grid_names_every_permission_and_every_role():
    assert set(GRID) == set(permissions.PERMISSIONS)
    assert set(ROLES) == set(ALL_ROLES)


@pytest.mark.parametrize(("permission", "role", "allowed"), CASES)
def test_permission_table(permission, role, allowed):
    assert can(role, permission) is allowed
    assert can(Actor(tenant_id=1, user_id=1, role=role), permission) is allowed
    assert (permission in permissions.permissions_of(role)) is allowed
    if allowed:
        require(Actor(tenant_id=1, role=role), permission)
    else:
        with pytest.raises(NotAllowed) as refused:
            require(Actor(tenant_id=1, role=role), permission)
        assert refused.value.status == 403 and refused.value.permission == permission
        assert isinstance(refused.value, PermissionError)


@pytest.mark.parametrize("permission", sorted(permissions.PERMISSIONS))
def test_nobody_and_the_system_hold_no_permission(permission):
    assert not can(None, permission)
    assert not can("system", permission)
    assert not can(Actor.system(1), permission)
    assert not AnonymousVisitor().can(permission)


def test_a_misspelt_permission_is_an_error_not_a_no():
    with pytest.raises(permissions.UnknownPermission):
        can("admin", "record.finalise")
    with pytest.raises(permissions.UnknownPermission):
        requires("record.finalise")


def test_requires_declares_the_roles_of_its_permissions():
    @requires("share.manage_own", "share.manage_for_patient")
    def view():
        return ""

    policy: Policy = view.access_policy
    assert policy.roles == roles_for("share.manage_own") | roles_for("share.manage_for_patient")
    assert policy.permissions == ("share.manage_own", "share.manage_for_patient")


def test_every_route_declared_with_requires_opens_to_exactly_its_permissions_roles(app):
    declared = 0
    for rule in app.url_map.iter_rules():
        policy = policy_for(rule.endpoint)
        if policy is None or not policy.permissions:
            continue
        declared += 1
        expected = frozenset().union(*(roles_for(name) for name in policy.permissions))
        assert policy.roles == expected, rule.endpoint
        for role in ALL_ROLES:
            assert policy.allows(role) == any(can(role, name) for name in policy.permissions)
    assert declared > 40


def test_user_can_asks_the_table(app):
    tenant = make_tenant()
    for role in ALL_ROLES:
        user = make_user(tenant, role)
        held = {name for name in permissions.PERMISSIONS if user.can(name)}
        assert held == permissions.permissions_of(role)


# --- a route's decorator, its service and its page agree ----------------------------------------------------


@pytest.fixture
def clinic(app):
    tenant = make_tenant()
    people = {role: make_user(tenant, role) for role in ("admin", "doctor", "nurse", "coach", "front_desk")}
    patient = make_patient(tenant, first_name="Liv", last_name="Hepburn")
    draft = MedicalRecord(
        tenant_id=tenant.id, patient_id=patient.id, doctor_id=people["doctor"].id,
        author_id=people["doctor"].id, visit_at=datetime(2025, 3, 14, 9),
        chief_complaint="Fatigue and yellow eyes", status="draft",
    )  # fmt: skip
    db.session.add(draft)
    db.session.commit()
    return {"tenant": tenant, "patient": patient, "draft": draft, **people}


def _actor(user) -> Actor:
    return Actor(tenant_id=user.tenant_id, user_id=user.id, role=user.role)


def _nav_links(page: str) -> set[str]:
    nav = page[page.index('<nav aria-label="Main"') : page.index("</nav>")]
    return set(re.findall(r">([A-Z][a-z]+(?: [a-z]+)?)</a>", nav))


@pytest.mark.parametrize("role", ["admin", "doctor", "nurse", "coach", "front_desk"])
def test_finalize_agrees_in_route_service_and_page(client, clinic, role):
    """Finalize: the button shows, the route answers and the service acts for exactly the same roles."""
    user, draft = clinic[role], clinic["draft"]
    may = can(role, "record.finalize")
    assert policy_for("records.finalize").allows(role) is may
    login(client, user.email)
    page = client.get(f"/records/{draft.id}")
    if can(role, "record.read"):
        assert page.status_code == 200
        assert ("Finalize</button>" in page.get_data(as_text=True)) is may
        assert ("Edit draft" in page.get_data(as_text=True)) is can(role, "record.write")
    else:
        assert page.status_code == 403
    response = client.post(f"/records/{draft.id}/finalize", data={})
    if may:
        # Allowed through to the service, which refuses a draft without a diagnosis as input to fix.
        assert response.status_code == 303
    else:
        assert response.status_code == 403
        with pytest.raises(NotAllowed):
            records.finalize_record(_actor(user), draft.id)
    db.session.expire_all()
    assert draft.status == "draft"


def test_a_nurse_cannot_finalize_403_from_the_view_not_allowed_from_the_service_no_button(client, clinic):
    nurse, draft = clinic["nurse"], clinic["draft"]
    login(client, nurse.email)
    assert client.post(f"/records/{draft.id}/finalize", data={}).status_code == 403
    with pytest.raises(NotAllowed):
        records.finalize_record(_actor(nurse), draft.id)
    with pytest.raises(NotAllowed):
        records.add_addendum(_actor(nurse), draft.id, "Correction")
    page = client.get(f"/records/{draft.id}").get_data(as_text=True)
    assert "Edit draft" in page and "Finalize</button>" not in page
    db.session.expire_all()
    assert draft.status == "draft"


def test_front_desk_sees_no_clinical_content_in_route_service_or_page(client, clinic):
    desk, patient, draft = clinic["front_desk"], clinic["patient"], clinic["draft"]
    actor = _actor(desk)
    assert clinical_summary(actor, patient) is None
    with pytest.raises(NotAllowed):
        records.get_record(actor, draft.id)
    with pytest.raises(NotAllowed):
        records.search_records(actor, records.RecordFilters())
    with pytest.raises(NotAllowed):
        labs.lab_overview(actor, patient.id)
    login(client, desk.email)
    profile = client.get(f"/patients/{patient.id}").get_data(as_text=True)
    assert "Hepburn" in profile
    assert 'id="clinical"' not in profile and "Fatigue" not in profile and "New record" not in profile
    assert "Records" not in _nav_links(profile)
    assert "Shared records" not in profile
    for url in (f"/records/{draft.id}", "/records", f"/patients/{patient.id}/labs"):
        assert client.get(url).status_code == 403, url


def test_coach_reads_clinical_content_but_gets_no_write_controls(client, clinic):
    coach, patient, draft = clinic["coach"], clinic["patient"], clinic["draft"]
    summary = clinical_summary(_actor(coach), patient)
    assert summary is not None and [r.id for r in summary.records.records] == [draft.id]
    login(client, coach.email)
    profile = client.get(f"/patients/{patient.id}").get_data(as_text=True)
    assert 'id="clinical"' in profile and "Fatigue" in profile
    assert "New record" not in profile and "Record an allergy" not in profile
    assert "Edit profile" not in profile
    assert client.get(f"/patients/{patient.id}/records/new").status_code == 403
    with pytest.raises(NotAllowed):
        records.delete_record(_actor(coach), draft.id)


@pytest.mark.parametrize("role", ["admin", "doctor", "nurse", "coach", "front_desk"])
def test_the_main_menu_shows_exactly_the_pages_the_role_may_open(client, clinic, role):
    links = {
        "Records": "records.index",
        "Users": "accounts.users",
        "Record templates": "records.templates",
        "Audit log": "audit.index",
        "Outbox": "mail.outbox",
        "Sharing overview": "sharing.overview",
    }
    login(client, clinic[role].email)
    shown = _nav_links(client.get("/patients").get_data(as_text=True))
    for text, endpoint in links.items():
        assert (text in shown) is policy_for(endpoint).allows(role), (role, text)


def test_a_patient_reads_only_their_own_profile_through_the_service(app, clinic):
    mine, other = clinic["patient"], make_patient(clinic["tenant"])
    portal = _actor(make_portal_user(mine))
    assert patients.get_patient(portal, mine.id).id == mine.id
    assert patients.get_patient(portal, other.id) is None
    with pytest.raises(NotAllowed):
        patients.search_patients(portal)
    with pytest.raises(NotAllowed):
        patients.update_patient(_actor(clinic["coach"]), mine.id, {}, [])
