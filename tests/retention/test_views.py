"""The report, the legal hold and the purge's confirmation, as admins use them; everyone else is refused."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select

from healthcrm.audit.models import AuditEvent
from healthcrm.extensions import db
from healthcrm.jobs.models import Job
from healthcrm.patients.models import Patient
from healthcrm.retention.models import LegalHold, RecordPurge
from tests.factories import login, make_patient, make_tenant, make_user
from tests.retention.factories import add_file, old_patient

DUE = "/admin/retention/due"


@pytest.fixture
def clinic(app, client):
    tenant = make_tenant()
    admin, doctor = make_user(tenant, "admin"), make_user(tenant, "doctor")
    login(client, admin.email)
    return tenant, admin, doctor


def _events(action: str) -> list[AuditEvent]:
    return list(db.session.scalars(select(AuditEvent).where(AuditEvent.action == action)))


def test_the_report_lists_only_the_clinics_due_patients_and_is_audited(app, client, clinic):
    tenant, _admin, doctor = clinic
    due = old_patient(tenant, doctor, first_name="Olive", last_name="Oldham")
    make_patient(tenant, first_name="Fresh", last_name="Newman")  # added today: not due
    other = make_tenant("Other")
    old_patient(other, make_user(other, "doctor"), first_name="Stranger", last_name="Elsewhere")
    page = client.get(DUE)
    html = page.get_data(as_text=True)
    assert page.status_code == 200
    assert due.mrn in html and "Olive Oldham" in html and "04 Mar 2001" in html
    assert "Newman" not in html and "Stranger" not in html
    assert len(_events("retention.report_viewed")) == 1
    assert 'href="/admin/retention/due"' in client.get("/admin/retention").get_data(as_text=True)


def test_the_report_filters_by_hold_and_pages(app, client, clinic):
    tenant, _admin, doctor = clinic
    held, free = old_patient(tenant, doctor), old_patient(tenant, doctor)
    assert (
        client.post(f"/admin/retention/patients/{held.id}/hold", data={"reason": "Case 7"}).status_code == 303
    )
    held_page = client.get(f"{DUE}?held=held").get_data(as_text=True)
    free_page = client.get(f"{DUE}?held=not_held").get_data(as_text=True)
    assert held.mrn in held_page and free.mrn not in held_page
    assert free.mrn in free_page and held.mrn not in free_page
    assert client.get(f"{DUE}?page=999").status_code == 200  # the last page, not an error
    fragment = client.get(DUE, headers={"HX-Request": "true"}).get_data(as_text=True)
    assert "<html" not in fragment and free.mrn in fragment


def test_placing_and_releasing_a_hold_from_the_patient_page(app, client, clinic):
    tenant, _admin, doctor = clinic
    patient = old_patient(tenant, doctor)
    profile = client.get(f"/patients/{patient.id}").get_data(as_text=True)
    assert f"/admin/retention/patients/{patient.id}/hold" in profile
    assert client.get(f"/admin/retention/patients/{patient.id}/hold").status_code == 200
    placed = client.post(f"/admin/retention/patients/{patient.id}/hold", data={"reason": "Subpoena 12"})
    assert placed.status_code == 303
    hold = db.session.scalar(select(LegalHold))
    assert (hold.reason, hold.is_active) == ("Subpoena 12", True)
    again = client.post(f"/admin/retention/patients/{patient.id}/hold", data={"reason": "Twice"})
    assert again.status_code == 422 and "already on legal hold" in again.get_data(as_text=True)
    assert client.post(f"/admin/retention/patients/{patient.id}/hold/release", data={}).status_code == 303
    db.session.expire_all()
    assert not db.session.scalar(select(LegalHold)).is_active
    assert [len(_events(a)) for a in ("retention.hold_placed", "retention.hold_released")] == [1, 1]
    assert _events("retention.hold_placed")[0].patient_id == patient.id


@pytest.mark.parametrize("reason", ["", "   ", "x" * 501])
def test_a_hold_without_a_good_reason_changes_nothing(app, client, clinic, reason):
    tenant, _admin, doctor = clinic
    patient = old_patient(tenant, doctor)
    answer = client.post(f"/admin/retention/patients/{patient.id}/hold", data={"reason": reason})
    assert answer.status_code == 422
    assert "reason" in answer.get_data(as_text=True).lower()
    assert db.session.scalar(select(func.count()).select_from(LegalHold)) == 0
    assert _events("retention.hold_placed") == []


def test_another_clinics_patient_is_not_found(app, client, clinic):
    other = make_tenant("Other")
    stranger = old_patient(other, make_user(other, "doctor"))
    base = f"/admin/retention/patients/{stranger.id}/hold"
    assert client.get(base).status_code == 404
    assert client.post(base, data={"reason": "Nope"}).status_code == 404
    assert client.post(f"{base}/release", data={}).status_code == 404
    answer = client.post("/admin/retention/purge", data={"patient_ids": [stranger.id], "confirm": "PURGE"})
    assert answer.status_code == 422
    assert db.session.get(Patient, stranger.id) is not None
    assert db.session.scalar(select(func.count()).select_from(LegalHold)) == 0


@pytest.mark.parametrize("role", ["doctor", "nurse", "coach", "front_desk"])
def test_only_admins_reach_the_report_holds_and_purge(app, client, role):
    tenant = make_tenant()
    patient = old_patient(tenant, make_user(tenant, "doctor"))
    login(client, make_user(tenant, role).email)
    assert client.get(DUE).status_code == 403
    assert client.get(f"/admin/retention/patients/{patient.id}/hold").status_code == 403
    assert (
        client.post(f"/admin/retention/patients/{patient.id}/hold", data={"reason": "x"}).status_code == 403
    )
    assert client.post("/admin/retention/purge/review", data={"patient_ids": [patient.id]}).status_code == 403
    answer = client.post("/admin/retention/purge", data={"patient_ids": [patient.id], "confirm": "PURGE"})
    assert answer.status_code == 403
    assert db.session.get(Patient, patient.id) is not None
    assert f"/admin/retention/patients/{patient.id}/hold" not in client.get(
        f"/patients/{patient.id}"
    ).get_data(as_text=True)


def test_the_confirmation_names_the_counts_and_a_wrong_word_purges_nothing(app, client, clinic, inline_jobs):
    tenant, _admin, doctor = clinic
    first, second = old_patient(tenant, doctor), old_patient(tenant, doctor)
    held = old_patient(tenant, doctor)
    client.post(f"/admin/retention/patients/{held.id}/hold", data={"reason": "Case 9"})
    first_id, second_id, held_id = first.id, second.id, held.id
    from healthcrm.records.models import MedicalRecord

    add_file(db.session.scalar(select(MedicalRecord).where(MedicalRecord.patient_id == first.id)))
    ids = [first.id, second.id, held.id]
    review = client.post("/admin/retention/purge/review", data={"patient_ids": ids})
    html = review.get_data(as_text=True)
    assert review.status_code == 200
    assert "<strong>2 patients</strong>" in html and "<strong>1</strong> stored files" in html
    assert "1 chosen patient is on legal hold" in html
    for word in ("", "purge", "DELETE", "3"):
        wrong = client.post(
            "/admin/retention/purge", data={"patient_ids": [first.id, second.id], "confirm": word}
        )
        assert wrong.status_code == 422, word
        assert "Type PURGE" in wrong.get_data(as_text=True)
    assert db.session.scalar(select(func.count()).select_from(Patient)) == 3
    assert client.post("/admin/retention/purge/review", data={}).status_code == 422  # nobody chosen
    done = client.post("/admin/retention/purge", data={"patient_ids": ids, "confirm": "2"})
    assert done.status_code == 303
    db.session.expire_all()
    assert db.session.scalar(select(Patient.id)) == held_id
    assert sorted(db.session.scalars(select(RecordPurge.patient_id))) == [first_id, second_id]
    assert len(_events("retention.purge_confirmed")) == 1
    jobs = db.session.scalars(select(Job).where(Job.kind == "retention.purge")).all()
    assert [(job.status, job.result["purged"]) for job in jobs] == [("finished", True)] * 2
    assert all(job.label.startswith("Purge of patient #") for job in jobs)  # no name in the label
    purges = _events("retention.purge")
    assert sorted(e.patient_id for e in purges) == [first_id, second_id]
    assert all(e.outcome == "success" and "medical_records" in e.changed_fields for e in purges)
