"""The patient's profile page: contact details, address, insurance and emergency contacts change directly,
audited and raised as events; bad input is a 422 that changes nothing; another patient's contact id is 404;
a patient_id in the form is ignored (the session decides)."""

from __future__ import annotations

import json
from dataclasses import dataclass

import pytest
from sqlalchemy import func, select

from healthcrm.audit.models import AuditEvent
from healthcrm.extensions import db
from healthcrm.patients.models import EmergencyContact, Patient
from healthcrm.portal.models import PortalEvent
from healthcrm.tenant_scope import all_tenants
from tests.factories import make_patient, make_portal_user, make_tenant, make_user
from tests.portal.selfcare_data import sign_in


@dataclass
class Family:
    tenant: object
    patient: object
    user: object
    contact: object
    other: object
    other_contact: object


def _contact(patient, name: str) -> EmergencyContact:
    contact = EmergencyContact(
        tenant_id=patient.tenant_id,
        patient_id=patient.id,
        name=name,
        relationship_to_patient="Sister",
        phone="555-201-0134",
    )
    db.session.add(contact)
    db.session.commit()
    return contact


@pytest.fixture
def family(app) -> Family:
    tenant = make_tenant("Profile Clinic")
    make_user(tenant, "front_desk")
    patient = make_patient(tenant, city="Springfield", insurance_provider="Acme Health")
    other = make_patient(tenant, city="Shelbyville")
    return Family(
        tenant, patient, make_portal_user(patient), _contact(patient, "Ann"), other, _contact(other, "Bob")
    )


def _count(model, *where) -> int:
    with all_tenants("test"):
        return db.session.scalar(select(func.count()).select_from(model).where(*where))


def _fresh(model, id_):
    db.session.expire_all()
    return db.session.get(model, id_)


def test_the_patient_sees_their_details_and_links_to_settings(family, client):
    sign_in(client, family.user)
    page = client.get("/portal/profile")
    assert page.status_code == 200
    assert family.patient.full_name in page.text and "Springfield" in page.text and "Ann" in page.text
    assert "Shelbyville" not in page.text and "Bob" not in page.text
    assert 'href="/portal/notifications/settings"' in page.text and 'href="/account/security"' in page.text
    assert _count(AuditEvent, AuditEvent.action == "profile.view", AuditEvent.patient_id == family.patient.id)


def test_contact_details_change_audited_with_an_event(family, client):
    sign_in(client, family.user)
    response = client.post(
        "/portal/profile/contact",
        data={
            "email": "New@Example.com",
            "phone": "(555) 201-0199",
            "address_line": "1 Main St",
            "city": "Springfield",
            "state": "IL",
            "postal_code": "62701",
            "patient_id": family.other.id,  # ignored: the session decides whose profile this is
        },
    )
    assert response.status_code == 303
    patient = _fresh(Patient, family.patient.id)
    assert patient.email == "new@example.com" and patient.address_line == "1 Main St"
    assert _fresh(Patient, family.other.id).address_line is None
    audit = db.session.scalar(
        select(AuditEvent).where(AuditEvent.action == "patient.update", AuditEvent.patient_id == patient.id)
    )
    assert set(json.loads(audit.changed_fields)) == {"email", "phone", "address_line", "state", "postal_code"}
    event = db.session.scalar(select(PortalEvent).where(PortalEvent.kind == "profile.updated"))
    assert event.patient_id == patient.id and event.payload["section"] == "contact"
    assert _count(AuditEvent, AuditEvent.patient_id == family.other.id) == 0


def test_insurance_changes_in_place_for_htmx(family, client):
    sign_in(client, family.user)
    response = client.post(
        "/portal/profile/insurance",
        data={"insurance_provider": "Blue Shield", "insurance_member_id": "M-1", "insurance_group": ""},
        headers={"HX-Request": "true"},
    )
    assert response.status_code == 200
    assert response.text.lstrip().startswith('<section class="card" id="insurance"')
    assert "saved" in response.text and "<html" not in response.text
    assert _fresh(Patient, family.patient.id).insurance_provider == "Blue Shield"


@pytest.mark.parametrize(
    ("path", "data", "message"),
    [
        ("/portal/profile/contact", {"email": "not-an-email", "phone": "555-201-0100"}, "email address"),
        ("/portal/profile/contact", {"email": "a@example.com", "phone": "call me"}, "phone number"),
        ("/portal/profile/contact", {"city": "x" * 101}, "under 100 characters"),
        ("/portal/profile/insurance", {"insurance_member_id": "9" * 61}, "under 60 characters"),
        ("/portal/profile/emergency-contacts", {"name": "", "phone": "555-201-0100"}, "contact&#39;s name"),
        ("/portal/profile/emergency-contacts", {"name": "Cy", "phone": ""}, "phone number"),
    ],
)
def test_bad_input_is_422_in_the_form_and_changes_nothing(family, client, path, data, message):
    sign_in(client, family.user)
    before_audit = _count(AuditEvent, AuditEvent.action == "patient.update")
    response = client.post(path, data=data)
    assert response.status_code == 422 and message in response.text
    assert 'aria-invalid="true"' in response.text
    patient = _fresh(Patient, family.patient.id)
    assert (
        patient.email == family.user.email and patient.phone == "555-0100" and patient.city == "Springfield"
    )
    assert patient.insurance_member_id is None
    assert _count(EmergencyContact, EmergencyContact.patient_id == patient.id) == 1
    assert _count(AuditEvent, AuditEvent.action == "patient.update") == before_audit
    assert _count(PortalEvent, PortalEvent.kind == "profile.updated") == 0


def test_emergency_contacts_add_edit_remove(family, client):
    sign_in(client, family.user)
    added = client.post(
        "/portal/profile/emergency-contacts",
        data={"name": "Cy", "relationship": "Friend", "phone": "555-201-0177"},
    )
    assert added.status_code == 303
    cy = db.session.scalar(select(EmergencyContact).where(EmergencyContact.name == "Cy"))
    assert cy.patient_id == family.patient.id and cy.tenant_id == family.tenant.id
    cy_id = cy.id
    edited = client.post(
        f"/portal/profile/emergency-contacts/{family.contact.id}",
        data={"name": "Ann Lee", "relationship": "Sister", "phone": "555-201-0134"},
    )
    assert edited.status_code == 303 and _fresh(EmergencyContact, family.contact.id).name == "Ann Lee"
    removed = client.post(f"/portal/profile/emergency-contacts/{cy_id}/remove", data={})
    assert removed.status_code == 303 and _fresh(EmergencyContact, cy_id) is None
    assert _count(PortalEvent, PortalEvent.kind == "profile.updated") == 3
    assert (
        _count(
            AuditEvent,
            AuditEvent.action == "patient.update",
            AuditEvent.patient_id == family.patient.id,
        )
        == 3
    )


def test_another_patients_emergency_contact_is_404_and_unchanged(family, client):
    sign_in(client, family.user)
    bob = family.other_contact.id
    edit = client.post(
        f"/portal/profile/emergency-contacts/{bob}", data={"name": "Mallory", "phone": "555-201-0666"}
    )
    remove = client.post(f"/portal/profile/emergency-contacts/{bob}/remove", data={})
    htmx_remove = client.post(
        f"/portal/profile/emergency-contacts/{bob}/remove", data={}, headers={"HX-Request": "true"}
    )
    assert edit.status_code == remove.status_code == htmx_remove.status_code == 404
    contact = _fresh(EmergencyContact, bob)
    assert contact is not None and contact.name == "Bob" and contact.phone == "555-201-0134"
    assert _count(PortalEvent) == 0


def test_staff_cannot_open_the_portal_profile(family, client):
    staff = make_user(family.tenant, "nurse")
    sign_in(client, staff)
    assert client.get("/portal/profile").status_code in (403, 404)
