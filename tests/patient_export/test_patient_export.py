"""The patient's whole record: a ZIP with a readable PDF, a FHIR R4 bundle that validates, and the files."""

from __future__ import annotations

import hashlib
import io
import json
import zipfile
from base64 import b64encode
from datetime import timedelta

import pytest
from fhir.resources.R4B.bundle import Bundle
from flask import current_app
from pypdf import PdfReader
from sqlalchemy import select

from healthcrm.audit.models import AuditEvent
from healthcrm.clock import utcnow
from healthcrm.extensions import db
from healthcrm.files.models import SCAN_NOT_SCANNED, Attachment, AttachmentVersion
from healthcrm.files.storage import get_storage
from healthcrm.jobs.models import Job
from healthcrm.records.models import FINALIZED, MedicalRecord
from tests.factories import login, make_portal_user, make_tenant, make_user
from tests.sharing.factories import make_shared_patient

EXPECTED_TYPES = {
    "Patient", "Encounter", "Condition", "Observation", "MedicationRequest", "AllergyIntolerance",
    "Immunization", "DocumentReference",
}  # fmt: skip


def _file(patient, name: str, data: bytes, *, record=None, visible: bool = False) -> Attachment:
    key = f"{patient.tenant_id}/test-files/{name}"
    get_storage(current_app).put_stream(key, io.BytesIO(data), "application/pdf")
    digest = hashlib.sha256(data).hexdigest()
    attachment = Attachment(
        tenant_id=patient.tenant_id, record_id=record.id if record else None, patient_id=patient.id,
        filename=name, name_key=name.casefold(), visible_to_patient=visible,
    )  # fmt: skip
    version = AttachmentVersion(
        tenant_id=patient.tenant_id, attachment=attachment, number=1, storage_key=key, original_name=name,
        kind="pdf", content_type="application/pdf", size=len(data), stored_size=len(data), sha256=digest,
        stored_sha256=digest, scan_status=SCAN_NOT_SCANNED,
    )  # fmt: skip
    db.session.add_all([attachment, version])
    db.session.flush()
    attachment.current_version_id = version.id
    db.session.commit()
    return attachment


@pytest.fixture
def clinic(app, inline_jobs):
    tenant = make_tenant("Lakeside Liver Clinic")
    doctor = make_user(tenant, "doctor", full_name="Dr. Ana Ruiz")
    patient = make_shared_patient(tenant, doctor)
    visit = db.session.scalars(
        select(MedicalRecord).where(MedicalRecord.patient_id == patient.id, MedicalRecord.status == FINALIZED)
    ).first()
    _file(patient, "ultrasound.pdf", b"%PDF-1.4 ultrasound report", record=visit)
    _file(patient, "referral.pdf", b"%PDF-1.4 referral letter", visible=True)
    _file(patient, "internal-note.pdf", b"%PDF-1.4 staff only")  # a document the patient does not see
    return {"tenant": tenant, "doctor": doctor, "patient": patient, "portal": make_portal_user(patient)}


def _zip(response) -> zipfile.ZipFile:
    assert response.status_code == 200, response.status_code
    assert response.headers["Content-Type"] == "application/zip"
    return zipfile.ZipFile(io.BytesIO(response.data))


def _export(client, base: str) -> tuple[str, zipfile.ZipFile]:
    started = client.post(base, data={})
    assert started.status_code == 303
    job_url = started.headers["Location"]
    page = client.get(job_url).get_data(as_text=True)
    assert "is ready" in page or "Ready:" in page, page
    return job_url, _zip(client.get(f"{job_url}/download"))


def test_the_patient_downloads_pdf_fhir_and_files_and_every_resource_validates(clinic, client):
    login(client, clinic["portal"].email)
    assert "Prepare my record" in client.get("/portal/export").get_data(as_text=True)
    _, archive = _export(client, "/portal/export")
    names = set(archive.namelist())
    assert {"record.pdf", "fhir-bundle.json", "README.txt"} <= names
    files = sorted(n for n in names if n.startswith("files/"))
    assert sorted(n.rsplit("-", 1)[-1] for n in files) == [
        "referral.pdf",
        "ultrasound.pdf",
    ]  # not the staff note

    data = json.loads(archive.read("fhir-bundle.json"))
    parsed = Bundle.model_validate(data)  # every entry's resource validates with its own model
    assert parsed.type == "collection"
    types = {entry["resource"]["resourceType"] for entry in data["entry"]}
    assert types >= EXPECTED_TYPES
    encounters = [e["resource"] for e in data["entry"] if e["resource"]["resourceType"] == "Encounter"]
    assert len(encounters) == 2  # the draft visit is not the patient's to see
    assert "Draft, never shared" not in json.dumps(data)
    conditions = [e["resource"] for e in data["entry"] if e["resource"]["resourceType"] == "Condition"]
    assert {c["code"]["coding"][0]["system"] for c in conditions} == {"http://hl7.org/fhir/sid/icd-10-cm"}
    observations = [e["resource"] for e in data["entry"] if e["resource"]["resourceType"] == "Observation"]
    labs = [o for o in observations if o["category"][0]["coding"][0]["code"] == "laboratory"]
    assert labs and all("referenceRange" in lab for lab in labs)
    for entry in data["entry"]:
        resource = entry["resource"]
        if resource["resourceType"] == "DocumentReference":
            attachment = resource["content"][0]["attachment"]
            body = archive.read(attachment["url"])
            assert attachment["size"] == len(body)
            assert attachment["hash"] == b64encode(hashlib.sha1(body).digest()).decode()  # noqa: S324

    text = "".join(page.extract_text() for page in PdfReader(io.BytesIO(archive.read("record.pdf"))).pages)
    assert clinic["patient"].last_name in text and "Penicillin" in text


def test_staff_export_the_clinical_record_with_every_file(clinic, client):
    doctor = clinic["doctor"]
    login(client, doctor.email)
    _, archive = _export(client, f"/patients/{clinic['patient'].id}/export")
    files = [n for n in archive.namelist() if n.startswith("files/")]
    assert len(files) == 3
    data = json.loads(archive.read("fhir-bundle.json"))
    Bundle.model_validate(data)
    actions = db.session.scalars(
        select(AuditEvent.action).where(AuditEvent.patient_id == clinic["patient"].id)
    )
    assert {"patient.export", "patient.export_download"} <= set(actions)


def test_another_patients_export_is_not_found(app, clinic, client):
    login(client, clinic["portal"].email)
    job_url, _ = _export(client, "/portal/export")
    job_id = job_url.rsplit("/", 1)[-1]
    other = make_portal_user(make_shared_patient(clinic["tenant"], clinic["doctor"]))
    someone = app.test_client()
    login(someone, other.email)
    assert someone.get(f"/portal/export/{job_id}").status_code == 404
    assert someone.get(f"/portal/export/{job_id}/download").status_code == 404
    # A doctor who did not start it, or with another patient's id: not found either.
    doctor = app.test_client()
    login(doctor, clinic["doctor"].email)
    assert doctor.get(f"/patients/{clinic['patient'].id}/export/{job_id}/download").status_code == 404
    assert doctor.get(f"/patients/{other.patient_id}/export/{job_id}/download").status_code == 404


def test_front_desk_may_not_export_and_the_download_ends_after_a_day(app, clinic, client):
    desk = app.test_client()
    login(desk, make_user(clinic["tenant"], "front_desk").email)
    assert desk.post(f"/patients/{clinic['patient'].id}/export", data={}).status_code == 403
    login(client, clinic["portal"].email)
    job_url, _ = _export(client, "/portal/export")
    # A day later (the job finished 25 hours ago; the session is kept fresh).
    job = db.session.scalar(select(Job).where(Job.kind == "patient_export.build"))
    job.finished_at = utcnow() - timedelta(hours=25)
    db.session.commit()
    response = client.get(f"{job_url}/download")
    assert response.status_code == 410
    assert "expired" in response.get_data(as_text=True)
    # The hourly clean-up deletes the file.
    from healthcrm.patient_export.services import delete_old_exports

    key = job.result["key"]
    assert delete_old_exports() == 1
    assert get_storage(current_app).head(key) is None
