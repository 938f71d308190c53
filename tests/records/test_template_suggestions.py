"""What a record template fills in is a suggestion: marked on the form, and a suggested diagnosis becomes a
diagnosis only when the clinician confirms it; finalizing with unconfirmed suggestions is refused."""

from __future__ import annotations

from datetime import datetime

import pytest
from sqlalchemy import func, select

from healthcrm.audit.models import AuditEvent
from healthcrm.audit.services import Actor
from healthcrm.extensions import db
from healthcrm.records import record_templates
from healthcrm.records.models import DRAFT, FINALIZED, MedicalRecord
from healthcrm.records.services import (
    DiagnosisInput,
    RecordError,
    RecordInput,
    create_record,
    finalize_record,
    update_record,
)
from healthcrm.sharing.content import shared_content
from tests.factories import login, make_patient, make_tenant, make_user

ALCOHOLIC_CIRRHOSIS = "K70.31"
ASCITES = "R18.8"


@pytest.fixture
def clinic(app):
    tenant = make_tenant("Lakeside Hepatology")
    admin = make_user(tenant, "admin")
    doctor = make_user(tenant, "doctor")
    template = record_templates.create_template(
        Actor(tenant_id=tenant.id, user_id=admin.id, role="admin"),
        record_templates.TemplateInput(
            name="Hepatology follow-up",
            specialty="Hepatology",
            chief_complaint="Cirrhosis follow-up",
            treatment_plan="Alcohol abstinence; sodium restriction.",
            default_diagnosis_codes=[ALCOHOLIC_CIRRHOSIS, ASCITES],
        ),
    )
    return {
        "tenant": tenant,
        "doctor": doctor,
        "actor": Actor(tenant_id=tenant.id, user_id=doctor.id, role="doctor"),
        "patient": make_patient(tenant),
        "version": template.current,
    }


def _input(clinic, *diagnoses: DiagnosisInput) -> RecordInput:
    return RecordInput(
        doctor_id=clinic["doctor"].id,
        visit_at=datetime(2026, 11, 20, 15, 0),
        chief_complaint="Cirrhosis follow-up",
        diagnoses=list(diagnoses),
    )


def _suggested(code: str, *, confirmed: bool = False, primary: bool = False) -> DiagnosisInput:
    return DiagnosisInput(code, is_primary=primary, suggested=True, confirmed=confirmed)


def _finalize_events() -> int:
    return db.session.scalar(
        select(func.count()).select_from(AuditEvent).where(AuditEvent.action == "record.finalize")
    )


# --- the services -----------------------------------------------------------------------------------------


def test_an_unconfirmed_suggestion_is_kept_as_a_suggestion_not_a_diagnosis(clinic):
    record = create_record(
        clinic["actor"],
        clinic["patient"].id,
        _input(clinic, _suggested(ALCOHOLIC_CIRRHOSIS, primary=True), DiagnosisInput("K76.6")),
        template_version_id=clinic["version"].id,
    )
    assert [d.code for d in record.diagnoses] == ["K76.6"]
    assert record.diagnoses[0].is_primary  # the first confirmed one, since the suggested primary is not
    assert record.suggested_diagnoses == [
        {"code": "K70.31", "name": "Alcoholic cirrhosis of liver with ascites", "primary": True}
    ]
    assert "k70.31" not in record.search_text and "alcoholic" not in record.search_text


def test_a_confirmed_suggestion_is_a_diagnosis(clinic):
    record = create_record(
        clinic["actor"],
        clinic["patient"].id,
        _input(clinic, _suggested(ALCOHOLIC_CIRRHOSIS, confirmed=True, primary=True), _suggested(ASCITES)),
    )
    assert [(d.code, d.is_primary) for d in record.diagnoses] == [("K70.31", True)]
    assert [d["code"] for d in record.suggested_diagnoses] == ["R18.8"]


def test_finalizing_with_unconfirmed_suggestions_is_refused_naming_them_and_changes_nothing(clinic):
    record = create_record(
        clinic["actor"],
        clinic["patient"].id,
        _input(clinic, DiagnosisInput("K76.6"), _suggested(ALCOHOLIC_CIRRHOSIS), _suggested(ASCITES)),
    )
    with pytest.raises(RecordError) as refused:
        finalize_record(clinic["actor"], record.id)
    message = refused.value.message
    assert "K70.31 Alcoholic cirrhosis of liver with ascites" in message and "R18.8" in message
    assert "Confirm" in message
    db.session.rollback()
    db.session.expire_all()
    record = db.session.get(MedicalRecord, record.id)
    assert record.status == DRAFT and record.finalized_at is None
    assert _finalize_events() == 0

    # Confirming one and clearing the other (left out of the rows) lets it through.
    update_record(
        clinic["actor"],
        record.id,
        _input(clinic, DiagnosisInput("K76.6"), _suggested(ALCOHOLIC_CIRRHOSIS, confirmed=True)),
    )
    assert record.suggested_diagnoses is None
    finalize_record(clinic["actor"], record.id)
    assert record.status == FINALIZED
    assert [d.code for d in record.diagnoses] == ["K76.6", "K70.31"]


# --- the pages ------------------------------------------------------------------------------------------


def _form(clinic, **fields) -> dict:
    return {
        "template_version_id": str(clinic["version"].id),
        "doctor_id": str(clinic["doctor"].id),
        "visit_at": "2026-11-20T10:00",
        "chief_complaint": "Cirrhosis follow-up",
        "treatment_plan": "Alcohol abstinence; sodium restriction.",
        **fields,
    }


def test_the_form_marks_what_the_template_filled_in_and_confirm_is_unticked(client, clinic):
    login(client, clinic["doctor"].email)
    url = f"/patients/{clinic['patient'].id}/records/new"
    page = client.get(url, query_string={"template": clinic["version"].template_id}).get_data(as_text=True)
    assert page.count("Suggested by the template") >= 4  # the note, two diagnosis rows, the text fields
    assert 'class="field suggested' in page
    assert 'id="treatment_plan-hint">Suggested by the template' in page
    assert 'id="chief_complaint-hint">Suggested by the template' in page
    assert 'name="diagnoses-0-suggested" type="hidden" value="1"' in page
    assert 'name="diagnoses-1-suggested" type="hidden" value="1"' in page
    assert 'id="diagnoses-0-confirmed" name="diagnoses-0-confirmed" type="checkbox" value="y">' in page
    assert "checked" not in page.split('id="diagnoses-0-confirmed"')[1].split(">")[0]
    assert "template-suggestions.js" in page


def test_saving_keeps_suggestions_then_finalize_is_refused_until_confirmed(client, clinic):
    login(client, clinic["doctor"].email)
    url = f"/patients/{clinic['patient'].id}/records/new"
    response = client.post(
        url,
        data=_form(
            clinic,
            **{
                "diagnoses-0-code": ALCOHOLIC_CIRRHOSIS,
                "diagnoses-0-primary": "y",
                "diagnoses-0-suggested": "1",
                "diagnoses-1-code": ASCITES,
                "diagnoses-1-suggested": "1",
            },
        ),
    )
    assert response.status_code == 303
    record = db.session.scalars(select(MedicalRecord)).one()
    assert record.diagnoses == [] and len(record.suggested_diagnoses) == 2

    # The record page does not list them as diagnoses.
    shown = client.get(f"/records/{record.id}").get_data(as_text=True)
    assert "Alcoholic cirrhosis of liver with ascites" not in shown

    # The edit page shows them again as suggestions, still unconfirmed; the untouched plan is still marked.
    edit = client.get(f"/records/{record.id}/edit").get_data(as_text=True)
    assert 'name="diagnoses-0-suggested" type="hidden" value="1"' in edit
    assert 'value="K70.31"' in edit
    assert 'id="treatment_plan-hint">Suggested by the template' in edit

    refused = client.post(f"/records/{record.id}/finalize", data={}, follow_redirects=True)
    body = refused.get_data(as_text=True)
    assert "The template suggested diagnoses nobody has confirmed" in body
    assert "K70.31 Alcoholic cirrhosis of liver with ascites" in body
    db.session.expire_all()
    assert db.session.get(MedicalRecord, record.id).status == DRAFT

    # Confirm the first, clear the second; a changed plan is no longer marked.
    client.post(
        f"/records/{record.id}/edit",
        data=_form(
            clinic,
            treatment_plan="Sodium restriction; review in 3 months.",
            **{
                "diagnoses-0-code": ALCOHOLIC_CIRRHOSIS,
                "diagnoses-0-suggested": "1",
                "diagnoses-0-confirmed": "y",
            },
        ),
    )
    edit = client.get(f"/records/{record.id}/edit").get_data(as_text=True)
    assert "treatment_plan-hint" not in edit
    response = client.post(f"/records/{record.id}/finalize", data={})
    assert response.status_code == 303
    db.session.expire_all()
    record = db.session.get(MedicalRecord, record.id)
    assert record.status == FINALIZED and [d.code for d in record.diagnoses] == ["K70.31"]


def test_the_provider_share_never_shows_an_unconfirmed_suggestion(clinic):
    from tests.sharing.factories import make_share

    record = create_record(
        clinic["actor"],
        clinic["patient"].id,
        _input(clinic, DiagnosisInput("K76.6"), _suggested(ALCOHOLIC_CIRRHOSIS)),
    )
    record.suggested_diagnoses = [{"code": "K70.31", "name": "Alcoholic cirrhosis", "primary": False}]
    record.status = FINALIZED  # as if it had slipped through: the share still reads diagnoses only
    db.session.commit()
    share = make_share(clinic["patient"])
    content = shared_content(share)
    assert [d.code for d in content.diagnoses] == ["K76.6"]
