"""The portal's record pages: the patient's visits, results, medications and conditions, never a hidden note
or a held result, and nobody else's record."""

from __future__ import annotations

import time_machine
from sqlalchemy import func, select

from healthcrm.audit.models import AuditEvent
from healthcrm.extensions import db
from healthcrm.records.models import FINALIZED, MedicalRecord
from healthcrm.tenant_scope import all_tenants
from tests.factories import login
from tests.portal.test_records_view import HELD_VALUE, HIDDEN_NOTE, NOW, SUMMARY, clinic  # noqa: F401
from tests.sharing.factories import make_shared_patient

PAGES = (
    "/portal/records",
    "/portal/records/results",
    "/portal/records/medications",
    "/portal/records/health",
)


def _audited(action: str) -> int:
    with all_tenants("test"):
        return db.session.scalar(
            select(func.count()).select_from(AuditEvent).where(AuditEvent.action == action)
        )


def test_every_record_page_opens_and_never_shows_a_hidden_note_or_a_held_result(clinic, client):  # noqa: F811
    with time_machine.travel(NOW, tick=False):
        login(client, clinic["user"].email)
        record = clinic["record"]
        pages = [*PAGES, f"/portal/records/{record.id}", "/portal/records/results/2345-7"]
        texts = {}
        for path in pages:
            response = client.get(path)
            texts[path] = response.get_data(as_text=True)
            assert response.status_code == (404 if path.endswith("2345-7") else 200), path
        assert SUMMARY in texts[f"/portal/records/{record.id}"]
        for path, text in texts.items():
            assert HIDDEN_NOTE not in text, path
            assert str(int(HELD_VALUE)) not in text, path
        assert "usual range" in texts["/portal/records/results"]
        assert _audited("portal.record_view") == 1
        assert _audited("portal.labs_view") == 1


def test_a_shown_note_reaches_the_patient(clinic, client):  # noqa: F811
    with time_machine.travel(NOW, tick=False):
        clinic["record"].notes_visible_to_patient = True
        db.session.commit()
        login(client, clinic["user"].email)
        text = client.get(f"/portal/records/{clinic['record'].id}").get_data(as_text=True)
        assert HIDDEN_NOTE in text


def test_another_patients_record_and_an_unknown_test_answer_404(clinic, client):  # noqa: F811
    with time_machine.travel(NOW, tick=False):
        other = make_shared_patient(clinic["tenant"], clinic["doctor"])
        their_record = db.session.scalar(
            select(MedicalRecord.id).where(
                MedicalRecord.patient_id == other.id, MedicalRecord.status == FINALIZED
            )
        )
        draft = db.session.scalar(
            select(MedicalRecord.id).where(
                MedicalRecord.patient_id == clinic["patient"].id, MedicalRecord.status != FINALIZED
            )
        )
        login(client, clinic["user"].email)
        assert client.get(f"/portal/records/{their_record}").status_code == 404
        assert client.get(f"/portal/records/{draft}").status_code == 404
        assert client.get("/portal/records/results/no-such-test").status_code == 404
        assert client.get("/portal/records/999999").status_code == 404


def test_the_timeline_shows_signed_visits_and_released_results_only(clinic, client):  # noqa: F811
    with time_machine.travel(NOW, tick=False):
        login(client, clinic["user"].email)
        text = client.get("/portal/timeline").get_data(as_text=True)
        assert "A visit was signed" in text
        assert "Result: ALT" in text
        assert "Result: Glucose" not in text  # held
        assert client.get("/portal/timeline?kind=result").status_code == 200
