"""What the patient sees of their records: results released at once (and the patient told), one result held
with a reason and an end date within the clinic's maximum (audited, released early or on its date), hidden
notes and held results absent from the patient's view and from the shares the patient makes."""

from __future__ import annotations

import io
from datetime import datetime, timedelta

import pytest
import time_machine
from pypdf import PdfReader
from sqlalchemy import select

from healthcrm.audit.models import AuditEvent
from healthcrm.audit.services import Actor
from healthcrm.clock import utcnow
from healthcrm.extensions import db
from healthcrm.portal import events
from healthcrm.portal.models import Notification, PortalEvent
from healthcrm.records import patient_view, result_holds
from healthcrm.records.labs import LabInput, add_lab_results
from healthcrm.records.models import FINALIZED, MedicalRecord
from healthcrm.records.services import RecordError
from healthcrm.sharing import services as sharing
from healthcrm.sharing.content import shared_content
from healthcrm.sharing.exports import build_pdf, labs_csv
from healthcrm.sharing.models import ShareToken
from healthcrm.tenant_scope import all_tenants
from tests.factories import login, make_portal_user, make_tenant, make_user
from tests.sharing.factories import SECOND_VISIT, add_lab, make_share, make_shared_patient

NOW = datetime(2026, 6, 1, 15, 0)  # naive UTC
HIDDEN_NOTE = "Suspect alcohol use; discuss carefully."
HELD_VALUE = 987.0
SUMMARY = "Your liver tests are a little high. We will check again in a month."


@pytest.fixture
def clinic(app):
    with time_machine.travel(NOW, tick=False):
        tenant = make_tenant()
        doctor = make_user(tenant, "doctor")
        patient = make_shared_patient(tenant, doctor)
        user = make_portal_user(patient)
        record = db.session.scalar(
            select(MedicalRecord).where(
                MedicalRecord.tenant_id == tenant.id,
                MedicalRecord.patient_id == patient.id,
                MedicalRecord.status == FINALIZED,
            )
        )
        record.notes = HIDDEN_NOTE
        record.patient_summary = SUMMARY
        held = add_lab(patient, "2345-7", "Glucose", HELD_VALUE, "mg/dL", SECOND_VISIT, 70, 99, record=record)
        db.session.commit()
        doctor_actor = Actor(tenant_id=tenant.id, user_id=doctor.id, role="doctor")
        result_holds.hold_result(
            doctor_actor, held.id, "Tell in person first", NOW.date() + timedelta(days=10)
        )
        yield {
            "tenant": tenant,
            "doctor": doctor,
            "patient": patient,
            "user": user,
            "record": record,
            "held": held,
            "actor": doctor_actor,
            "patient_actor": Actor(tenant_id=tenant.id, user_id=user.id, role="patient"),
        }


def _handle_all() -> None:
    with all_tenants("test"):
        pending = db.session.execute(
            select(PortalEvent.id, PortalEvent.tenant_id).where(PortalEvent.handled_at.is_(None))
        ).all()
    for event_id, tenant_id in pending:
        events.handle_event(event_id, tenant_id)


def _result_notices(user_id: int) -> list[Notification]:
    with all_tenants("test"):
        return list(
            db.session.scalars(
                select(Notification).where(Notification.user_id == user_id, Notification.kind == "result")
            )
        )


def test_a_new_result_is_released_at_once_and_the_patient_is_told(clinic):
    with time_machine.travel(NOW, tick=False):
        row = LabInput("718-7", "Hemoglobin", "13.1", "g/dL", 12.0, 15.5, NOW - timedelta(hours=2))
        (saved,) = add_lab_results(clinic["actor"], clinic["patient"].id, [row])
        _handle_all()
        tests = patient_view.patient_lab_tests(clinic["patient_actor"], clinic["patient"].id)
    assert saved.id in {r.id for t in tests for r in t.results}
    notices = _result_notices(clinic["user"].id)
    assert [n.text for n in notices] == ["You have a new result"]
    assert "13.1" not in notices[0].text and "Hemoglobin" not in notices[0].text


def test_a_hold_is_audited_with_its_reason_kept_and_hides_the_result_until_its_date(clinic):
    held = clinic["held"]
    assert held.hold_reason == "Tell in person first"
    audit = db.session.scalars(
        select(AuditEvent).where(
            AuditEvent.tenant_id == clinic["tenant"].id, AuditEvent.action == "result.hold"
        )
    ).all()
    assert [a.resource_id for a in audit] == [str(held.id)]
    with time_machine.travel(NOW, tick=False):
        tests = patient_view.patient_lab_tests(clinic["patient_actor"], clinic["patient"].id)
    assert held.id not in {r.id for t in tests for r in t.results}
    # On the end date it shows (computed from the date); the sweep tells the patient once.
    with time_machine.travel(NOW + timedelta(days=10), tick=False):
        tests = patient_view.patient_lab_tests(clinic["patient_actor"], clinic["patient"].id)
        assert held.id in {r.id for t in tests for r in t.results}
        assert result_holds.release_expired_holds() == "1 held results released"
        assert result_holds.release_expired_holds() == "0 held results released"
        _handle_all()
    assert len(_result_notices(clinic["user"].id)) == 1


def test_a_hold_longer_than_the_clinics_maximum_is_refused_with_a_clear_message(clinic):
    lab = add_lab(clinic["patient"], "718-7", "Hemoglobin", 13.0, "g/dL", SECOND_VISIT, 12, 15.5)
    db.session.commit()
    with time_machine.travel(NOW, tick=False), pytest.raises(RecordError) as refused:
        result_holds.hold_result(clinic["actor"], lab.id, "Reason", NOW.date() + timedelta(days=31))
    assert refused.value.field == "until" and "at most 30 days" in refused.value.message
    with time_machine.travel(NOW, tick=False), pytest.raises(RecordError) as no_reason:
        result_holds.hold_result(clinic["actor"], lab.id, "  ", NOW.date() + timedelta(days=3))
    assert no_reason.value.field == "reason"
    db.session.refresh(lab)
    assert lab.hold_until is None


def test_releasing_early_shows_the_result_and_tells_the_patient(clinic):
    with time_machine.travel(NOW, tick=False):
        result_holds.release_result(clinic["actor"], clinic["held"].id)
        _handle_all()
        tests = patient_view.patient_lab_tests(clinic["patient_actor"], clinic["patient"].id)
        with pytest.raises(RecordError):
            result_holds.release_result(clinic["actor"], clinic["held"].id)
    assert clinic["held"].id in {r.id for t in tests for r in t.results}
    assert len(_result_notices(clinic["user"].id)) == 1


def test_the_patients_records_show_the_summary_never_hidden_notes_drafts_or_others(clinic):
    with time_machine.travel(NOW, tick=False):
        records = patient_view.patient_records(clinic["patient_actor"], clinic["patient"].id)
        one = patient_view.patient_record(clinic["patient_actor"], clinic["patient"].id, clinic["record"].id)
        other = make_shared_patient(clinic["tenant"], clinic["doctor"])
        other_record = db.session.scalar(
            select(MedicalRecord).where(
                MedicalRecord.tenant_id == clinic["tenant"].id, MedicalRecord.patient_id == other.id
            )
        )
        with pytest.raises(LookupError):
            patient_view.patient_record(clinic["patient_actor"], clinic["patient"].id, other_record.id)
    assert all(r.status == FINALIZED for r in records) and len(records) == 2
    assert one.patient_summary == SUMMARY and one.notes is None and one.addenda == []
    assert HELD_VALUE not in [lab.value_numeric for lab in one.labs]
    clinic["record"].notes_visible_to_patient = True
    db.session.commit()
    with time_machine.travel(NOW, tick=False):
        shown = patient_view.patient_record(
            clinic["patient_actor"], clinic["patient"].id, clinic["record"].id
        )
    assert shown.notes == HIDDEN_NOTE


def _provider_pages(client, share) -> str:
    token = sharing.new_token()
    db.session.add(
        ShareToken(tenant_id=share.tenant_id, share_id=share.id, token_hash=sharing.token_hash(token))
    )
    db.session.commit()
    url = f"/s/{token}"
    start = client.post(url, data={})
    client.get(start.headers["Location"])
    pages = [client.get(f"{url}/{tab}").get_data(as_text=True) for tab in ("summary", "labs", "records")]
    pages.append(client.get(f"{url}/print").get_data(as_text=True))
    pages.append(client.get(f"{url}/labs", headers={"HX-Request": "true"}).get_data(as_text=True))
    csv = client.get(f"{url}/export/labs.csv")
    assert csv.status_code == 200
    pages.append(csv.get_data(as_text=True))
    return "\n".join(pages)


def test_a_share_the_patient_made_hides_held_results_and_hidden_notes_everywhere(clinic, client):
    with time_machine.travel(NOW, tick=True):
        share = make_share(clinic["patient"], allow_download=True, created_by_id=clinic["user"].id)
        seen = _provider_pages(client, share)
        content = shared_content(share)
        out = io.BytesIO()
        build_pdf(content, "watermark", out)
    assert "Bilirubin" in seen and "Fatigue and itching" in seen  # the pages did render
    assert HIDDEN_NOTE not in seen and "987" not in seen and "Glucose" not in seen
    assert "INR repeated" not in seen  # the addendum follows the notes
    assert "987" not in labs_csv(content)
    text = "\n".join(page.extract_text() for page in PdfReader(io.BytesIO(out.getvalue())).pages)
    assert HIDDEN_NOTE not in text and "987" not in text and "Glucose" not in text


def test_a_share_staff_made_for_the_patient_shares_the_clinical_record(clinic):
    with time_machine.travel(NOW, tick=True):
        share = make_share(clinic["patient"], created_by_staff=True, created_by_id=clinic["doctor"].id)
        content = shared_content(share)
    assert HELD_VALUE in [lab.value_numeric for lab in content.labs]
    assert HIDDEN_NOTE in [r.notes for r in content.records]


def test_staff_hold_pages_answer_404_for_another_clinics_result(clinic, client):
    other = make_tenant(name="Other clinic")
    doctor = make_user(other, "doctor")
    login(client, doctor.email)
    assert client.get(f"/care/results/{clinic['held'].id}/hold").status_code == 404
    assert client.post(f"/care/results/{clinic['held'].id}/release", data={}).status_code == 404
    assert client.post(f"/care/records/{clinic['record'].id}/patient-view", data={}).status_code == 404


def test_the_hold_form_refuses_an_over_long_hold_with_422_and_changes_nothing(clinic, client):
    lab = add_lab(clinic["patient"], "718-7", "Hemoglobin", 13.0, "g/dL", SECOND_VISIT, 12, 15.5)
    db.session.commit()
    login(client, clinic["doctor"].email)
    too_far = (utcnow().date() + timedelta(days=60)).isoformat()
    answer = client.post(f"/care/results/{lab.id}/hold", data={"reason": "Wait", "until": too_far})
    assert answer.status_code == 422 and "at most 30 days" in answer.get_data(as_text=True)
    db.session.refresh(lab)
    assert lab.hold_until is None
