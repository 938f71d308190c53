"""The documents pages: the patient's (/portal/documents: list, upload by plain form post, open and
download their own, scan state) and the staff's section of the patient page (list, upload for the patient,
"visible to patient" with and without htmx). Another patient's or clinic's ids answer 404."""

from __future__ import annotations

import io

import pytest
from sqlalchemy import func, select

from healthcrm.audit.models import AuditEvent
from healthcrm.audit.services import Actor
from healthcrm.demo.data import seed_demo
from healthcrm.extensions import db
from healthcrm.files import patient_files
from healthcrm.files.models import SCAN_INFECTED, SCAN_PENDING, Attachment
from healthcrm.files.services import read_version
from healthcrm.tenant_scope import all_tenants
from tests.factories import login, make_patient, make_portal_user, make_tenant, make_user
from tests.files import samples

HX = {"HX-Request": "true"}


@pytest.fixture
def clinic(app):
    tenant = make_tenant()
    patient = make_patient(tenant, first_name="Liv", last_name="Hepburn")
    other = make_patient(tenant, first_name="Otto", last_name="Other")
    return {
        "tenant": tenant,
        "nurse": make_user(tenant, "nurse"),
        "coach": make_user(tenant, "coach"),
        "front_desk": make_user(tenant, "front_desk"),
        "patient": patient,
        "portal_user": make_portal_user(patient),
        "other": other,
        "other_user": make_portal_user(other),
    }


def _store(user, patient, name: str, data: bytes) -> Attachment:
    source = patient_files.PORTAL if user.role == "patient" else patient_files.STAFF
    actor = Actor(tenant_id=user.tenant_id, user_id=user.id, role=user.role)
    return patient_files.store_patient_file(actor, patient.id, name, io.BytesIO(data), source=source)


def _count(model) -> int:
    with all_tenants("test"):
        return db.session.scalar(select(func.count()).select_from(model))


def _post_file(client, url: str, name: str, data: bytes, **extra):
    return client.post(
        url, data={"file": (io.BytesIO(data), name), **extra}, content_type="multipart/form-data"
    )


@pytest.fixture
def patient_client(client, clinic):
    assert login(client, clinic["portal_user"].email).status_code == 303
    return client


@pytest.fixture
def nurse_client(client, clinic):
    assert login(client, clinic["nurse"].email).status_code == 303
    return client


# --- the patient ---------------------------------------------------------------------------------------


def test_the_patient_uploads_a_document_and_sees_it(patient_client, clinic):
    answer = _post_file(patient_client, "/portal/documents", "Lab results.pdf", samples.pdf())
    assert answer.status_code == 303 and answer.headers["Location"].endswith("/portal/documents")
    page = patient_client.get("/portal/documents").get_data(as_text=True)
    assert "Lab results.pdf" in page and "was uploaded" in page and "You added it" in page
    document = db.session.scalar(select(Attachment).where(Attachment.tenant_id == clinic["tenant"].id))
    view = patient_client.get(f"/portal/documents/{document.id}/view")
    assert view.status_code == 200 and view.data == samples.pdf()
    assert view.headers["Content-Type"] == "application/pdf"
    assert view.headers["Content-Security-Policy"].startswith("sandbox;")
    download = patient_client.get(f"/portal/documents/{document.id}/download")
    assert download.status_code == 200 and download.headers["Content-Disposition"].startswith("attachment")
    actions = set(
        db.session.scalars(select(AuditEvent.action).where(AuditEvent.resource_id == str(document.id)))
    )
    assert {"attachment.upload", "attachment.view", "attachment.download"} <= actions


def test_a_bad_file_gets_a_clear_422_and_nothing_is_stored(patient_client, clinic):
    answer = _post_file(patient_client, "/portal/documents", "notes.pdf", samples.html())
    assert answer.status_code == 422
    text = answer.get_data(as_text=True)
    assert "notes.pdf: " in text and "web page" in text and 'aria-invalid="true"' in text
    assert _count(Attachment) == 0
    nothing = patient_client.post("/portal/documents", data={}, content_type="multipart/form-data")
    assert nothing.status_code == 422 and "Choose a file" in nothing.get_data(as_text=True)


def test_the_quota_refuses_with_words_for_the_patient(patient_client, clinic, app):
    clinic["tenant"].storage_quota_bytes = 10
    db.session.commit()
    answer = _post_file(patient_client, "/portal/documents", "scan.pdf", samples.pdf())
    assert answer.status_code == 422 and "call the clinic" in answer.get_data(as_text=True)
    assert _count(Attachment) == 0


@pytest.mark.parametrize("state", [SCAN_PENDING, SCAN_INFECTED])
def test_files_waiting_for_the_scan_or_quarantined_are_never_served(patient_client, clinic, state):
    document = _store(clinic["portal_user"], clinic["patient"], "scan.pdf", samples.pdf())
    version = document.current_version
    version.scan_status, version.scan_signature = state, "Clinic.Test.EICAR"
    db.session.commit()
    page = patient_client.get("/portal/documents").get_data(as_text=True)
    if state == SCAN_PENDING:
        assert "Being checked" in page and 'data-hx-trigger="every 5s"' in page
    else:
        assert "did not pass the virus check" in page and "every 5s" not in page
    assert f"/portal/documents/{document.id}/view" not in page
    for what in ("view", "download"):
        answer = patient_client.get(f"/portal/documents/{document.id}/{what}")
        assert answer.status_code == 409 and b"%PDF" not in answer.data
    fragment = patient_client.get("/portal/documents", headers=HX).get_data(as_text=True)
    assert 'id="documents"' in fragment and "<html" not in fragment


def test_another_patients_or_a_hidden_or_a_record_file_is_404(patient_client, clinic):
    theirs = _store(clinic["other_user"], clinic["other"], "theirs.pdf", samples.pdf())
    hidden = _store(clinic["nurse"], clinic["patient"], "hidden.pdf", samples.pdf())
    far_tenant = make_tenant(name="Elsewhere")
    far_patient = make_patient(far_tenant)
    far = _store(make_portal_user(far_patient), far_patient, "far.pdf", samples.pdf())
    for document in (theirs, hidden, far):
        for what in ("view", "download"):
            assert patient_client.get(f"/portal/documents/{document.id}/{what}").status_code == 404
    page = patient_client.get("/portal/documents").get_data(as_text=True)
    assert "theirs.pdf" not in page and "hidden.pdf" not in page
    assert patient_client.get("/portal/documents/999999/view").status_code == 404


def test_a_staff_file_marked_visible_reaches_the_patient(patient_client, clinic):
    letter = _store(clinic["nurse"], clinic["patient"], "Clinic letter.pdf", samples.pdf())
    nurse = Actor(tenant_id=clinic["tenant"].id, user_id=clinic["nurse"].id, role="nurse")
    patient_files.set_visible_to_patient(nurse, clinic["patient"].id, letter.id, True)
    page = patient_client.get("/portal/documents").get_data(as_text=True)
    assert "Clinic letter.pdf" in page and "From the clinic" in page
    assert patient_client.get(f"/portal/documents/{letter.id}/view").status_code == 200


def test_staff_pages_are_not_for_patients(patient_client, clinic):
    assert patient_client.get(f"/care/documents/patients/{clinic['patient'].id}").status_code == 403


# --- staff ---------------------------------------------------------------------------------------------


def test_the_patient_page_lists_the_documents_and_staff_upload_one(nurse_client, clinic):
    patient = clinic["patient"]
    _store(clinic["portal_user"], patient, "From the patient.pdf", samples.pdf())
    page = nurse_client.get(f"/patients/{patient.id}").get_data(as_text=True)
    assert 'id="documents"' in page and "From the patient.pdf" in page and "The patient" in page
    answer = _post_file(
        nurse_client, f"/care/documents/patients/{patient.id}", "Discharge.pdf", samples.pdf()
    )
    assert answer.status_code == 303 and answer.headers["Location"].endswith(
        f"/patients/{patient.id}#documents"
    )
    staff_doc = db.session.scalar(select(Attachment).where(Attachment.filename == "Discharge.pdf"))
    assert staff_doc.visible_to_patient is False and staff_doc.source == "staff"
    page = nurse_client.get(f"/patients/{patient.id}").get_data(as_text=True)
    assert "Discharge.pdf" in page and "Make visible to patient" in page
    version = staff_doc.current_version
    assert nurse_client.get(f"/files/{staff_doc.id}/versions/{version.id}/view").data == samples.pdf()
    # The attachment page is a record's: a patient document's sends to the documents.
    assert nurse_client.get(f"/files/{staff_doc.id}").status_code == 303


def test_a_bad_staff_upload_is_a_422_in_place(nurse_client, clinic):
    answer = _post_file(
        nurse_client, f"/care/documents/patients/{clinic['patient'].id}", "x.pdf", samples.exe()
    )
    assert answer.status_code == 422 and "x.pdf: " in answer.get_data(as_text=True)
    assert _count(Attachment) == 0


def test_visible_to_patient_toggles_with_and_without_htmx(nurse_client, clinic):
    patient = clinic["patient"]
    letter = _store(clinic["nurse"], patient, "letter.pdf", samples.pdf())
    url = f"/care/documents/patients/{patient.id}/{letter.id}/visibility"
    plain = nurse_client.post(url, data={"visible": "1"})
    assert plain.status_code == 303
    db.session.refresh(letter)
    assert letter.visible_to_patient is True
    fragment = nurse_client.post(url, data={"visible": "0"}, headers=HX)
    html = fragment.get_data(as_text=True)
    assert fragment.status_code == 200 and 'id="documents"' in html and "<html" not in html
    db.session.refresh(letter)
    assert letter.visible_to_patient is False
    assert nurse_client.post(url, data={"visible": "maybe"}).status_code == 400
    actions = list(
        db.session.scalars(select(AuditEvent.action).where(AuditEvent.resource_id == str(letter.id)))
    )
    assert "attachment.show_to_patient" in actions and "attachment.hide_from_patient" in actions


def test_another_clinics_or_patients_ids_are_404_for_staff(nurse_client, clinic):
    far_tenant = make_tenant(name="Far")
    far_patient = make_patient(far_tenant)
    far_doc = _store(make_user(far_tenant, "nurse"), far_patient, "far.pdf", samples.pdf())
    assert nurse_client.get(f"/care/documents/patients/{far_patient.id}").status_code == 404
    answer = _post_file(nurse_client, f"/care/documents/patients/{far_patient.id}", "x.pdf", samples.pdf())
    assert answer.status_code == 404
    url = f"/care/documents/patients/{far_patient.id}/{far_doc.id}/visibility"
    assert nurse_client.post(url, data={"visible": "1"}).status_code == 404
    # The right clinic's patient, another patient's document: not found either.
    theirs = _store(clinic["other_user"], clinic["other"], "theirs.pdf", samples.pdf())
    url = f"/care/documents/patients/{clinic['patient'].id}/{theirs.id}/visibility"
    assert nurse_client.post(url, data={"visible": "0"}).status_code == 404
    db.session.refresh(far_doc)
    assert far_doc.visible_to_patient is False


def test_the_front_desk_sees_no_documents(client, clinic):
    assert login(client, clinic["front_desk"].email).status_code == 303
    page = client.get(f"/patients/{clinic['patient'].id}").get_data(as_text=True)
    assert 'id="documents"' not in page
    assert client.get(f"/care/documents/patients/{clinic['patient'].id}").status_code == 403


def test_a_coach_reads_but_cannot_upload_or_toggle(client, clinic):
    letter = _store(clinic["nurse"], clinic["patient"], "letter.pdf", samples.pdf())
    assert login(client, clinic["coach"].email).status_code == 303
    page = client.get(f"/patients/{clinic['patient'].id}").get_data(as_text=True)
    assert "letter.pdf" in page and "Make visible to patient" not in page and "Add a document" not in page
    url = f"/care/documents/patients/{clinic['patient'].id}/{letter.id}/visibility"
    assert client.post(url, data={"visible": "1"}).status_code == 403


def test_the_demo_gives_portal_patients_a_document_of_their_own_and_a_clinic_letter(app):
    seed_demo(None)
    with all_tenants("test"):
        documents = list(db.session.scalars(select(Attachment).where(Attachment.record_id.is_(None))))
        assert {d.source for d in documents} == {"portal", "staff"}
        assert all(d.visible_to_patient for d in documents)
        assert len({d.tenant_id for d in documents}) >= 2
        # Not the archived letter of the restore demo (healthcrm/demo/archived_files.py): it cannot be read.
        letter = next(
            d
            for d in documents
            if d.source == "staff" and d.current_version.storage_class not in ("GLACIER", "DEEP_ARCHIVE")
        )
        assert b"".join(read_version(letter.current_version)).startswith(b"%PDF")
