"""Who has seen my record: staff, outside providers and the patient, newest first; only their own."""

from __future__ import annotations

from sqlalchemy import select

from healthcrm.audit.models import AuditEvent
from healthcrm.audit.services import Actor, record_event
from healthcrm.extensions import db
from tests.factories import login, make_patient, make_portal_user, make_tenant, make_user


def _look(tenant, patient, action: str, **actor) -> None:
    record_event(Actor(tenant_id=tenant.id, **actor), action, resource_type="patient", patient_id=patient.id)
    db.session.commit()


def test_the_patient_sees_staff_providers_and_themselves_newest_first(app, client):
    tenant = make_tenant()
    patient, other = make_patient(tenant), make_patient(tenant)
    user = make_portal_user(patient)
    doctor = make_user(tenant, "doctor")
    _look(tenant, patient, "patient.view", user_id=doctor.id, role="doctor")
    _look(tenant, patient, "portal.records_view", user_id=user.id, role="patient")
    _look(tenant, other, "patient.view", user_id=doctor.id, role="doctor")  # someone else's record
    _look(tenant, patient, "reminder.sent", role="system")  # nobody looked
    login(client, user.email)

    page = client.get("/portal/access").get_data(as_text=True)
    assert page.index("Viewed your visits") < page.index("Viewed a patient")
    assert f"{doctor.full_name} (Doctor)" in page
    assert page.count('class="card"') == 2  # not the other patient's, not the system's
    only_staff = client.get("/portal/access?who=staff").get_data(as_text=True)
    assert doctor.full_name in only_staff and "Viewed your visits" not in only_staff
    # Reading the page is itself on record, and not listed.
    seen = db.session.scalars(select(AuditEvent).where(AuditEvent.action == "portal.access_view")).all()
    assert [e.patient_id for e in seen] == [patient.id, patient.id]
    assert "read who has seen" not in page


def test_an_outside_provider_is_named_by_the_share(app, client):
    from healthcrm.clock import utcnow
    from healthcrm.sharing.models import SCOPE_ALL, ShareLink

    tenant = make_tenant()
    patient = make_patient(tenant)
    user = make_portal_user(patient)
    share = ShareLink(
        tenant_id=tenant.id, patient_id=patient.id, recipient_name="Dr. Ana Ortiz",
        recipient_email="ortiz@example.org", scope=SCOPE_ALL, expires_at=utcnow(),
    )  # fmt: skip
    db.session.add(share)
    db.session.commit()
    _look(tenant, patient, "share.open", role="provider", share_link_id=share.id)
    login(client, user.email)
    page = client.get("/portal/access?who=provider").get_data(as_text=True)
    assert "Outside provider" in page and "Dr. Ana Ortiz &lt;ortiz@example.org&gt;" in page
    assert "Provider opened the link" in page


def test_paging_and_bad_input(app, client):
    tenant = make_tenant()
    patient = make_patient(tenant)
    user = make_portal_user(patient)
    nurse = make_user(tenant, "nurse")
    for _ in range(35):
        record_event(
            Actor(tenant_id=tenant.id, user_id=nurse.id, role="nurse"), "lab.view", patient_id=patient.id
        )
    db.session.commit()
    login(client, user.email)
    first = client.get("/portal/access").get_data(as_text=True)
    assert first.count('class="card"') == 30 and "Older" in first
    for query in ("?before=abc", "?before=99999999999999999", "?who=<script>", "?before=-1"):
        assert client.get(f"/portal/access{query}").status_code == 200


def test_staff_cannot_open_the_patients_page(app, client):
    tenant = make_tenant()
    login(client, make_user(tenant, "admin").email)
    assert client.get("/portal/access").status_code == 403
