"""Record templates: admins keep them, each change is a new version, records remember theirs."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from healthcrm.extensions import db
from healthcrm.records.models import MedicalRecord, RecordTemplate
from tests.factories import login, make_patient, make_tenant, make_user

HEPATOLOGY = {
    "name": "Hepatology follow-up",
    "specialty": "Hepatology",
    "description": "Cirrhosis review",
    "sections": ["vitals", "diagnoses", "assessment", "plan", "follow_up"],
    "chief_complaint": "Cirrhosis follow-up",
    "treatment_plan": "Review labs; sodium restriction.",
    "follow_up_days": "90",
    "default_diagnoses": "K70.31, R18.8",
}


@pytest.fixture
def clinic(app):
    tenant = make_tenant()
    return {
        "tenant": tenant,
        "admin": make_user(tenant, "admin"),
        "doctor": make_user(tenant, "doctor"),
        "patient": make_patient(tenant),
    }


def _template(client, **changes) -> RecordTemplate:
    response = client.post("/record-templates", data={**HEPATOLOGY, **changes})
    assert response.status_code == 303, response.get_data(as_text=True)[:3000]
    return db.session.scalars(select(RecordTemplate).order_by(RecordTemplate.id.desc())).first()


def test_admin_creates_and_versions_a_template(client, clinic):
    login(client, clinic["admin"].email)
    template = _template(client)
    assert [v.version for v in template.versions] == [1]
    version = template.current
    assert version.sections == ["vitals", "diagnoses", "assessment", "plan", "follow_up"]
    assert [d["code"] for d in version.default_diagnoses] == ["K70.31", "R18.8"]
    assert version.default_diagnoses[0]["primary"] is True
    assert version.prefill["follow_up_days"] == 90

    # A rename alone keeps the version; a content change makes version 2.
    client.post(f"/record-templates/{template.id}", data={**HEPATOLOGY, "name": "Liver follow-up"})
    db.session.expire_all()
    assert template.name == "Liver follow-up" and len(template.versions) == 1
    client.post(
        f"/record-templates/{template.id}",
        data={**HEPATOLOGY, "name": "Liver follow-up", "chief_complaint": "Liver clinic review"},
    )
    db.session.expire_all()
    assert [v.version for v in template.versions] == [1, 2]
    assert "version 2" in client.get(f"/record-templates/{template.id}").get_data(as_text=True)


def test_a_record_made_from_a_template_remembers_its_version(client, clinic):
    login(client, clinic["admin"].email)
    template = _template(client)
    client.post("/logout", data={})
    login(client, clinic["doctor"].email)
    url = f"/patients/{clinic['patient'].id}/records/new"
    page = client.get(url, query_string={"template": template.id}).get_data(as_text=True)
    assert 'value="Cirrhosis follow-up"' in page and 'value="K70.31"' in page
    assert "Prescriptions" not in page  # a section the template does not show
    version_id = template.current.id
    response = client.post(
        url,
        data={
            "template_version_id": str(version_id),
            "doctor_id": str(clinic["doctor"].id),
            "visit_at": "2026-11-20T10:00",
            "chief_complaint": "Cirrhosis follow-up",
            "diagnoses-0-code": "K70.31",
            "diagnoses-0-primary": "y",
            "diagnoses-1-code": "R18.8",
        },
    )
    assert response.status_code == 303
    record = db.session.scalars(select(MedicalRecord)).one()
    assert record.template_version_id == version_id
    # A later version of the template does not change the record's.
    client.post("/logout", data={})
    login(client, clinic["admin"].email)
    client.post(f"/record-templates/{template.id}", data={**HEPATOLOGY, "chief_complaint": "Changed"})
    db.session.expire_all()
    assert record.template_version.version == 1
    assert "version 1" in client.get(f"/records/{record.id}").get_data(as_text=True)


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"name": ""}, "This field is required."),
        ({"default_diagnoses": "K70.31, NOPE"}, "is not an ICD-10-CM code"),
        ({"follow_up_days": "999"}, "Follow-up is between 1 and 730 days."),
        ({"sections": ["vitals", "bogus"]}, "is not a valid choice"),
    ],
)
def test_bad_template_input_is_refused(client, clinic, changes, message):
    login(client, clinic["admin"].email)
    response = client.post("/record-templates", data={**HEPATOLOGY, **changes})
    assert response.status_code == 422
    assert message in response.get_data(as_text=True)
    assert db.session.scalar(select(RecordTemplate.id)) is None


def test_only_admins_manage_templates_and_other_clinics_get_404(client, clinic):
    login(client, clinic["admin"].email)
    template = _template(client)
    client.post("/logout", data={})
    login(client, clinic["doctor"].email)
    assert client.get("/record-templates").status_code == 403
    client.post("/logout", data={})
    login(client, make_user(make_tenant(), "admin").email)
    assert client.get(f"/record-templates/{template.id}").status_code == 404
    assert "Hepatology follow-up" not in client.get("/record-templates").get_data(as_text=True)
    # Another clinic's template version id is ignored on a new record.
    client.post("/logout", data={})
    other = make_tenant()
    other_doctor, other_patient = make_user(other, "doctor"), make_patient(other)
    login(client, other_doctor.email)
    response = client.post(
        f"/patients/{other_patient.id}/records/new",
        data={
            "template_version_id": str(template.current.id),
            "doctor_id": str(other_doctor.id),
            "visit_at": "2026-11-20T10:00",
            "chief_complaint": "Check-up",
            "diagnoses-0-code": "Z00.00",
        },
    )
    assert response.status_code == 303
    assert db.session.scalars(select(MedicalRecord)).one().template_version_id is None


def test_archived_templates_are_not_offered(client, clinic):
    login(client, clinic["admin"].email)
    template = _template(client)
    # Followed, as a browser does: the page it leads to shows (and so clears) the "created" message.
    client.post(f"/record-templates/{template.id}/archive", data={}, follow_redirects=True)
    page = client.get(f"/patients/{clinic['patient'].id}/records/new").get_data(as_text=True)
    assert "Hepatology follow-up" not in page
    page = client.get(f"/patients/{clinic['patient'].id}/records/new?template={template.id}").get_data(
        as_text=True
    )
    assert 'value="Cirrhosis follow-up"' not in page
