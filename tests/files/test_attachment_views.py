"""Attachments through the web, on the local backend: the JSON upload API as uploader.js drives it (one form
POST, or PUTs of parts to the local part URLs), the record's files list, the attachment page, versions
(replace, restore, compare), downloads and views with their headers, bulk zip / delete / move, and who may
see what: front desk nothing, another clinic nothing at all (404)."""

from __future__ import annotations

import io
import re
import uuid
import zipfile
from datetime import datetime

import pytest
import requests
from sqlalchemy import func, select

from healthcrm.audit.models import AuditEvent
from healthcrm.audit.services import Actor
from healthcrm.errors import Conflict, NotAllowed, NotFound
from healthcrm.extensions import db
from healthcrm.files import services, uploads
from healthcrm.files.models import (
    SCAN_INFECTED,
    SCAN_PENDING,
    Attachment,
    AttachmentVersion,
    FileAccess,
    UploadSession,
)
from healthcrm.files.storage import STORAGE_EXTENSION, S3Storage
from healthcrm.jobs.models import Job
from healthcrm.records.models import MedicalRecord
from tests.factories import login, make_patient, make_tenant, make_user
from tests.files import samples

HX = {"HX-Request": "true"}
BIG_BYTES = 11 * 1024 * 1024  # over the multipart threshold (5 MiB): two parts of 8 MiB and 3 MiB


def _record(tenant, patient, doctor, complaint: str = "Scans", status: str = "draft") -> MedicalRecord:
    record = MedicalRecord(
        tenant_id=tenant.id,
        patient_id=patient.id,
        doctor_id=doctor.id,
        author_id=doctor.id,
        visit_at=datetime(2026, 11, 20, 9, 30),
        chief_complaint=complaint,
        status=status,
    )
    db.session.add(record)
    db.session.commit()
    return record


@pytest.fixture
def clinic(app):
    tenant = make_tenant()
    doctor = make_user(tenant, "doctor", full_name="Dr. Ada Quinn")
    patient = make_patient(tenant, first_name="Liv", last_name="Hepburn")
    return {
        "tenant": tenant,
        "doctor": doctor,
        "nurse": make_user(tenant, "nurse"),
        "coach": make_user(tenant, "coach"),
        "front_desk": make_user(tenant, "front_desk"),
        "patient": patient,
        "record": _record(tenant, patient, doctor),
        "other_draft": _record(tenant, patient, doctor, "Follow-up"),
    }


@pytest.fixture
def doctor(client, clinic):
    assert login(client, clinic["doctor"].email).status_code == 303
    return client


def _headers(client) -> dict:
    return {"X-CSRFToken": client.csrf_token()}


def _start(client, record_id: int, name: str, size: int, *, fingerprint: str | None = None, replace=None):
    body = {"name": name, "size": size, "type": "", "fingerprint": fingerprint or f"{name}|{size}|1"}
    if replace is not None:
        body["replace"] = replace
    return client.post(f"/records/{record_id}/uploads", json=body, headers=_headers(client))


def _send_parts(client, plan: dict, data: bytes, numbers=None) -> list[list]:
    """PUT parts to the local part URLs as the browser does; the ETag header comes back for each."""
    numbers = numbers or [n for n in range(1, plan["part_count"] + 1)]
    answer = client.post(
        f"/uploads/{plan['id']}/parts", json={"part_numbers": numbers}, headers=_headers(client)
    )
    assert answer.status_code == 200, answer.get_data(as_text=True)
    urls = answer.get_json()["urls"]
    sent = []
    for n in numbers:
        start = (n - 1) * plan["part_size"]
        put = client.put(urls[str(n)], data=data[start : start + plan["part_size"]])
        assert put.status_code == 200, put.get_data(as_text=True)
        sent.append([n, put.headers["ETag"]])
    return sent


def _upload(client, record_id: int, name: str, data: bytes, *, replace=None):
    """The whole flow uploader.js runs; returns the answer of "complete" (or of "start" when refused)."""
    start = _start(client, record_id, name, len(data), replace=replace)
    if start.status_code not in (200, 201):
        return start
    plan = start.get_json()
    parts = []
    if plan["multipart"]:
        parts = _send_parts(client, plan, data)
    else:
        fields = plan["post"]["fields"]
        sent = client.post(plan["post"]["url"], data={**fields, "file": (io.BytesIO(data), name)}, csrf=False)
        assert sent.status_code == 204, sent.get_data(as_text=True)
    return client.post(f"/uploads/{plan['id']}/complete", json={"parts": parts}, headers=_headers(client))


def _uploaded(client, record_id: int, name: str, data: bytes, **kwargs) -> dict:
    answer = _upload(client, record_id, name, data, **kwargs)
    assert answer.status_code == 200, answer.get_data(as_text=True)
    return answer.get_json()


def _version(attachment_id: int, number: int | None = None) -> AttachmentVersion:
    attachment = db.session.get(Attachment, attachment_id)
    if number is None:
        return attachment.current_version
    return next(v for v in attachment.versions if v.number == number)


def _file_url(attachment_id: int, version_id: int, what: str) -> str:
    return f"/files/{attachment_id}/versions/{version_id}/{what}"


# --- uploads ----------------------------------------------------------------------------------------------


def test_small_upload_shows_in_the_record_and_downloads_the_same_bytes(doctor, clinic):
    record = clinic["record"]
    pdf = samples.pdf()
    done = _uploaded(doctor, record.id, "MRI report.pdf", pdf)
    assert done["status"] == "ok" and done["version"] == 1 and done["name"] == "MRI report.pdf"

    fragment = doctor.get(f"/records/{record.id}/files", headers=HX)
    html = fragment.get_data(as_text=True)
    assert fragment.status_code == 200 and "<html" not in html
    assert "MRI report.pdf" in html and 'id="record-files"' in html and "1 version" in html
    assert "Dr. Ada Quinn" in html and "Not scanned" in html
    # Without htmx the same list is a page of its own.
    page = doctor.get(f"/records/{record.id}/files").get_data(as_text=True)
    assert "<html" in page and "MRI report.pdf" in page

    version = _version(done["attachment_id"])
    download = doctor.get(_file_url(done["attachment_id"], version.id, "download"))
    assert download.status_code == 200 and download.data == pdf
    assert download.headers["Content-Type"] == "application/pdf"
    assert download.headers["Content-Disposition"].startswith("attachment;")
    assert "filename*=UTF-8''MRI%20report.pdf" in download.headers["Content-Disposition"]
    assert download.headers["X-Content-Type-Options"] == "nosniff"
    assert download.headers["Content-Security-Policy"].startswith("sandbox")


def test_large_upload_goes_in_parts_and_resumes(doctor, clinic):
    record = clinic["record"]
    data = (
        b"ALT,AST,bilirubin,INR\n" + b"".join(b"%d,%d,1.%d,1.1\n" % (n, n * 2, n % 10) for n in range(10**6))
    )[:BIG_BYTES]
    start = _start(doctor, record.id, "labs.txt", len(data), fingerprint="labs.txt|big|42")
    assert start.status_code == 201
    plan = start.get_json()
    assert plan["multipart"] and plan["part_count"] == 2 and not plan["resumed"]
    first = _send_parts(doctor, plan, data, [1])

    # The page is reloaded and the same file chosen again: the upload resumes after part 1.
    again = _start(doctor, record.id, "labs.txt", len(data), fingerprint="labs.txt|big|42")
    resumed = again.get_json()
    assert again.status_code == 200 and resumed["id"] == plan["id"] and resumed["resumed"]
    assert [p["part_number"] for p in resumed["uploaded_parts"]] == [1]
    status = doctor.get(f"/uploads/{plan['id']}").get_json()
    assert [p["part_number"] for p in status["uploaded_parts"]] == [1]
    interrupted = doctor.get(f"/records/{record.id}/files", headers=HX).get_data(as_text=True)
    assert "Interrupted uploads" in interrupted and "labs.txt" in interrupted

    rest = _send_parts(doctor, resumed, data, [2])
    complete = doctor.post(
        f"/uploads/{plan['id']}/complete", json={"parts": first + rest}, headers=_headers(doctor)
    )
    assert complete.status_code == 200, complete.get_data(as_text=True)
    version = _version(complete.get_json()["attachment_id"])
    assert version.size == len(data) and version.compression == "gzip" and version.stored_size < len(data)
    download = doctor.get(_file_url(version.attachment_id, version.id, "download"))
    assert download.data == data


def test_a_web_page_named_pdf_is_rejected_with_the_reason(doctor, clinic):
    answer = _upload(doctor, clinic["record"].id, "fake.pdf", samples.html())
    assert answer.status_code == 422
    body = answer.get_json()
    assert body["status"] == "rejected"
    assert body["reason"].startswith("fake.pdf:") and "HTML" in body["reason"]
    assert db.session.scalar(select(func.count()).select_from(Attachment)) == 0


def test_cancel_drops_the_upload(doctor, clinic):
    plan = _start(doctor, clinic["record"].id, "scan.dcm", BIG_BYTES).get_json()
    assert doctor.delete(f"/uploads/{plan['id']}", headers=_headers(doctor)).status_code == 204
    # The "discard" button of an interrupted upload (htmx) gets an empty answer that removes its row.
    other = _start(doctor, clinic["record"].id, "other.dcm", BIG_BYTES).get_json()
    discarded = doctor.delete(f"/uploads/{other['id']}", headers={**_headers(doctor), **HX})
    assert discarded.status_code == 200 and discarded.data == b""
    session = db.session.scalar(select(UploadSession).where(UploadSession.public_id == plan["id"]))
    assert session.status == "aborted"
    assert "Interrupted uploads" not in doctor.get(
        f"/records/{clinic['record'].id}/files", headers=HX
    ).get_data(as_text=True)


def test_malformed_api_calls_answer_400(doctor, clinic):
    headers = _headers(doctor)
    url = f"/records/{clinic['record'].id}/uploads"
    assert (
        doctor.post(url, data="not json", headers={**headers, "Content-Type": "application/json"}).status_code
        == 400
    )
    assert doctor.post(url, json={"name": "a.txt", "size": "big"}, headers=headers).status_code == 400
    plan = _start(doctor, clinic["record"].id, "a.dcm", BIG_BYTES).get_json()
    assert (
        doctor.post(f"/uploads/{plan['id']}/parts", json={"part_numbers": "1"}, headers=headers).status_code
        == 400
    )
    answer = doctor.post(f"/uploads/{plan['id']}/complete", json={"parts": [[1]]}, headers=headers)
    assert answer.status_code == 400 and answer.get_json()["status"] == "error"
    # Missing parts are the file's problem, said in words.
    answer = doctor.post(f"/uploads/{plan['id']}/complete", json={"parts": []}, headers=headers)
    assert answer.status_code == 422 and "missing parts" in answer.get_json()["reason"]


# --- versions ---------------------------------------------------------------------------------------------


def test_same_name_makes_version_2_and_restore_makes_version_3(doctor, clinic):
    record = clinic["record"]
    first = _uploaded(doctor, record.id, "notes.txt", b"Bilirubin 1.8 mg/dL\nINR 1.3\n")
    second = _uploaded(doctor, record.id, "notes.txt", b"Bilirubin 2.4 mg/dL\nINR 1.5\n")
    assert second["attachment_id"] == first["attachment_id"] and second["version"] == 2
    attachment_id = first["attachment_id"]
    v1, v2 = _version(attachment_id, 1), _version(attachment_id, 2)

    page = doctor.get(f"/files/{attachment_id}").get_data(as_text=True)
    assert "Versions" in page and "INR 1.5" in page  # the current text, preformatted
    assert f'title="{v1.sha256}"' in page and v1.sha256[:12] in page
    assert f"/files/{attachment_id}/versions/{v1.id}/restore" in page
    assert 'name="left"' in page and 'name="right"' in page

    compare = doctor.get(f"/files/{attachment_id}/compare?left={v1.id}&right={v2.id}")
    html = compare.get_data(as_text=True)
    assert compare.status_code == 200
    assert '<span class="diff-removed">− Bilirubin 1.8 mg/dL</span>' in html
    assert '<span class="diff-added">+ Bilirubin 2.4 mg/dL</span>' in html

    restored = doctor.post(f"/files/{attachment_id}/versions/{v1.id}/restore", data={})
    assert restored.status_code == 303
    v3 = _version(attachment_id)
    assert v3.number == 3 and v3.sha256 == v1.sha256 and v3.restored_from_id == v1.id
    assert doctor.get(_file_url(attachment_id, v3.id, "download")).data == b"Bilirubin 1.8 mg/dL\nINR 1.3\n"
    assert "Version 1 restored as version 3." in doctor.get(f"/files/{attachment_id}").get_data(as_text=True)


def test_replace_uploads_a_new_version_under_another_name(doctor, clinic):
    first = _uploaded(doctor, clinic["record"].id, "xray.png", samples.png())
    again = _uploaded(
        doctor, clinic["record"].id, "xray-retake.png", samples.png((80, 60)), replace=first["attachment_id"]
    )
    assert again["attachment_id"] == first["attachment_id"] and again["version"] == 2
    page = doctor.get(f"/files/{first['attachment_id']}").get_data(as_text=True)
    assert "xray-retake.png" in page and 'class="file-preview-image"' in page


def test_gzip_compressed_csv_downloads_as_uploaded(doctor, clinic):
    csv = b"code,name,value,unit\n" + b"1975-2,Bilirubin total,1.8,mg/dL\n" * 2000
    done = _uploaded(doctor, clinic["record"].id, "labs ü.csv", csv)
    version = _version(done["attachment_id"])
    assert version.compression == "gzip" and version.stored_size < len(csv) // 5
    download = doctor.get(_file_url(done["attachment_id"], version.id, "download"))
    assert download.data == csv and download.headers["Content-Length"] == str(len(csv))
    assert download.headers["Content-Type"] == "text/csv"
    assert "filename*=UTF-8''labs%20%C3%BC.csv" in download.headers["Content-Disposition"]
    page = doctor.get(f"/files/{done['attachment_id']}").get_data(as_text=True)
    assert "gzip" in page and "% of the size" in page


def test_view_shows_text_as_plain_text_in_a_sandbox(doctor, clinic):
    done = _uploaded(doctor, clinic["record"].id, "letter.txt", b"Dear colleague,\n<b>not markup</b> here.\n")
    version = _version(done["attachment_id"])
    view = doctor.get(_file_url(done["attachment_id"], version.id, "view"))
    assert view.status_code == 200 and view.data.startswith(b"Dear colleague")
    assert view.headers["Content-Type"] == "text/plain; charset=utf-8"
    assert "text/html" not in view.headers["Content-Type"]
    assert view.headers["Content-Disposition"].startswith("inline;")
    assert view.headers["Content-Security-Policy"].startswith("sandbox")
    assert view.headers["X-Content-Type-Options"] == "nosniff"
    assert view.headers["X-Frame-Options"] == "SAMEORIGIN"


def test_view_of_a_kind_browsers_do_not_show_is_a_download(doctor, clinic):
    done = _uploaded(doctor, clinic["record"].id, "ct.dcm", samples.dicom())
    version = _version(done["attachment_id"])
    view = doctor.get(_file_url(done["attachment_id"], version.id, "view"))
    assert view.status_code == 302 and view.headers["Location"].endswith(
        _file_url(done["attachment_id"], version.id, "download")
    )
    page = doctor.get(f"/files/{done['attachment_id']}").get_data(as_text=True)
    assert "DICOM" in page or "study" in page


@pytest.mark.parametrize(
    ("name", "data", "content_type", "magic"),
    [
        ("photo.jpg", samples.jpeg(), "image/jpeg", b"\xff\xd8\xff"),
        ("scan.png", samples.png(), "image/png", b"\x89PNG"),
    ],
)
def test_thumbnails_are_images_in_the_list(doctor, clinic, drain_jobs, name, data, content_type, magic):
    done = _uploaded(doctor, clinic["record"].id, name, data)
    drain_jobs()
    version = _version(done["attachment_id"])
    thumb = doctor.get(_file_url(done["attachment_id"], version.id, "thumb"))
    assert thumb.status_code == 200 and thumb.headers["Content-Type"] == content_type
    assert thumb.data.startswith(magic)
    assert thumb.headers["Content-Security-Policy"].startswith("sandbox")
    listed = doctor.get(f"/records/{clinic['record'].id}/files", headers=HX).get_data(as_text=True)
    assert _file_url(done["attachment_id"], version.id, "thumb") in listed
    # Only DICOM studies have a rendered image.
    assert doctor.get(_file_url(done["attachment_id"], version.id, "image")).status_code == 404


def test_a_dicom_study_shows_its_image_and_details(doctor, clinic, drain_jobs):
    done = _uploaded(doctor, clinic["record"].id, "ct.dcm", samples.dicom())
    drain_jobs()
    version = _version(done["attachment_id"])
    image = doctor.get(_file_url(done["attachment_id"], version.id, "image"))
    assert image.status_code == 200 and image.data.startswith(b"\x89PNG")
    page = doctor.get(f"/files/{done['attachment_id']}").get_data(as_text=True)
    assert (
        _file_url(done["attachment_id"], version.id, "image") in page
        and 'class="facts dicom-details"' in page
    )


def test_the_attachment_page_shows_a_pdf_in_a_frame_sandboxed_by_its_answer(doctor, clinic):
    done = _uploaded(doctor, clinic["record"].id, "report.pdf", samples.pdf())
    version = _version(done["attachment_id"])
    page = doctor.get(f"/files/{done['attachment_id']}")
    html = page.get_data(as_text=True)
    assert re.search(rf'<iframe class="file-preview-frame" src="[^"]*/versions/{version.id}/view"', html)
    # The framed PDF is sandboxed by its own answer (Chromium shows no PDF in an iframe with `sandbox`).
    view = doctor.get(_file_url(done["attachment_id"], version.id, "view"))
    assert view.headers["Content-Type"] == "application/pdf" and view.data == samples.pdf()
    assert view.headers["Content-Security-Policy"].startswith("sandbox;")
    assert view.headers["X-Frame-Options"] == "SAMEORIGIN"
    # The htmx refresh after a replace is the page's block, not the whole page.
    fragment = doctor.get(f"/files/{done['attachment_id']}", headers=HX).get_data(as_text=True)
    assert 'id="attachment-body"' in fragment and "<html" not in fragment


# --- files that cannot be sent ----------------------------------------------------------------------------


@pytest.mark.parametrize("state", [SCAN_PENDING, SCAN_INFECTED])
def test_a_file_waiting_for_its_scan_or_infected_is_not_sent(doctor, clinic, state):
    done = _uploaded(doctor, clinic["record"].id, "scan.pdf", samples.pdf())
    version = _version(done["attachment_id"])
    version.scan_status, version.scan_signature = state, "Clinic.Test.EICAR"
    db.session.commit()
    for what in ("download", "view"):
        answer = doctor.get(_file_url(done["attachment_id"], version.id, what))
        assert answer.status_code == 409
        assert b"%PDF" not in answer.data
        text = answer.get_data(as_text=True)
        assert ("virus scan" in text) if state == SCAN_PENDING else ("infected" in text)
        assert "This file cannot be opened now" in text
    page = doctor.get(f"/files/{done['attachment_id']}").get_data(as_text=True)
    assert "cannot be opened" in page.lower()


def test_a_checksum_mismatch_sends_nothing(app, doctor, clinic):
    done = _uploaded(doctor, clinic["record"].id, "report.pdf", samples.pdf())
    version = _version(done["attachment_id"])
    path = app.extensions[STORAGE_EXTENSION].local_path(version.storage_key)
    path.write_bytes(path.read_bytes().replace(b"/Count 1", b"/Count 2"))
    answer = doctor.get(_file_url(done["attachment_id"], version.id, "download"))
    assert answer.status_code == 502
    assert b"%PDF" not in answer.data and "was not sent" in answer.get_data(as_text=True)
    assert db.session.scalar(
        select(func.count())
        .select_from(AuditEvent)
        .where(AuditEvent.action == "attachment.checksum_mismatch")
    )


# --- access log and audit ---------------------------------------------------------------------------------


def test_downloads_and_views_are_logged_and_audited(doctor, clinic):
    done = _uploaded(doctor, clinic["record"].id, "report.pdf", samples.pdf())
    version = _version(done["attachment_id"])
    doctor.get(_file_url(done["attachment_id"], version.id, "download"))
    doctor.get(_file_url(done["attachment_id"], version.id, "view"))
    rows = db.session.scalars(select(FileAccess).where(FileAccess.version_id == version.id)).all()
    assert sorted(row.action for row in rows) == ["download", "view"]
    assert all(row.user_id == clinic["doctor"].id for row in rows)
    actions = db.session.scalars(
        select(AuditEvent.action).where(
            AuditEvent.resource_type == "attachment", AuditEvent.resource_id == str(version.attachment_id)
        )
    ).all()
    assert (
        "attachment.download" in actions and "attachment.view" in actions and "attachment.upload" in actions
    )


# --- bulk actions -----------------------------------------------------------------------------------------


def test_zip_of_chosen_files(doctor, clinic, drain_jobs):
    record = clinic["record"]
    a = _uploaded(doctor, record.id, "a.txt", b"first file\n")
    b = _uploaded(doctor, record.id, "b.pdf", samples.pdf())
    answer = doctor.post(
        f"/records/{record.id}/files/bulk",
        data={"action": "zip", "ids": [str(a["attachment_id"]), str(b["attachment_id"])]},
        headers=HX,
    )
    html = answer.get_data(as_text=True)
    assert answer.status_code == 200 and "Zip of 2 files" in html
    drain_jobs()  # at once inline; with a worker process, when it has built the zip
    job = db.session.scalar(select(Job).where(Job.kind == "files.zip"))
    assert job.status == "finished" and job.user_id == clinic["doctor"].id
    progress = doctor.get(f"/records/{record.id}/files/zips/{job.id}", headers=HX)
    assert progress.status_code == 286 and f"/files/zips/{job.id}/download" in progress.get_data(as_text=True)
    download = doctor.get(f"/files/zips/{job.id}/download")
    assert download.status_code == 200 and download.headers["Content-Type"] == "application/zip"
    assert sorted(zipfile.ZipFile(io.BytesIO(download.data)).namelist()) == ["a.txt", "b.pdf"]

    # Without JavaScript the form post leads to the zip's page.
    plain = doctor.post(
        f"/records/{record.id}/files/bulk", data={"action": "zip", "ids": [str(a["attachment_id"])]}
    )
    assert plain.status_code == 303 and "/files/zips/" in plain.headers["Location"]
    drain_jobs()
    assert "Download" in doctor.get(plain.headers["Location"]).get_data(as_text=True)


def test_another_persons_zip_is_not_found(app, doctor, clinic):
    record = clinic["record"]
    a = _uploaded(doctor, record.id, "a.txt", b"first file\n")
    doctor.post(f"/records/{record.id}/files/bulk", data={"action": "zip", "ids": [str(a["attachment_id"])]})
    job = db.session.scalar(select(Job).where(Job.kind == "files.zip"))
    client = app.test_client()
    login(client, make_user(clinic["tenant"], "admin").email)
    assert client.get(f"/files/zips/{job.id}/download").status_code == 404
    assert client.get(f"/records/{record.id}/files/zips/{job.id}").status_code == 404


def test_delete_and_move_on_drafts(doctor, clinic):
    record, other = clinic["record"], clinic["other_draft"]
    a = _uploaded(doctor, record.id, "a.txt", b"first file\n")
    b = _uploaded(doctor, record.id, "b.txt", b"second file\n")
    page = doctor.get(f"/records/{record.id}/files", headers=HX).get_data(as_text=True)
    assert 'value="delete"' in page and 'value="move"' in page and "Follow-up" in page

    moved = doctor.post(
        f"/records/{record.id}/files/bulk",
        data={"action": "move", "ids": [str(b["attachment_id"])], "target": str(other.id)},
        headers=HX,
    )
    assert moved.status_code == 200 and "1 file moved." in moved.get_data(as_text=True)
    assert db.session.get(Attachment, b["attachment_id"]).record_id == other.id

    deleted = doctor.post(
        f"/records/{record.id}/files/bulk", data={"action": "delete", "ids": [str(a["attachment_id"])]}
    )
    assert deleted.status_code == 303
    assert db.session.get(Attachment, a["attachment_id"]) is None
    assert db.session.get(MedicalRecord, record.id).attachment_count == 0


def test_finalized_records_keep_their_files(doctor, clinic):
    record = clinic["record"]
    a = _uploaded(doctor, record.id, "a.txt", b"first file\n")
    record.status = "finalized"
    db.session.commit()
    page = doctor.get(f"/records/{record.id}/files", headers=HX).get_data(as_text=True)
    assert 'value="zip"' in page and 'value="delete"' not in page
    answer = doctor.post(
        f"/records/{record.id}/files/bulk",
        data={"action": "delete", "ids": [str(a["attachment_id"])]},
        headers=HX,
    )
    assert answer.status_code == 422 and "finalized" in answer.get_data(as_text=True)
    assert db.session.get(Attachment, a["attachment_id"]) is not None


def test_coach_reads_and_zips_but_does_not_change(app, doctor, clinic):
    done = _uploaded(doctor, clinic["record"].id, "a.txt", b"first file\n")
    version = _version(done["attachment_id"])
    client = app.test_client()
    login(client, clinic["coach"].email)
    assert client.get(f"/files/{done['attachment_id']}").status_code == 200
    assert client.get(_file_url(done["attachment_id"], version.id, "download")).status_code == 200
    page = client.get(f"/records/{clinic['record'].id}/files", headers=HX).get_data(as_text=True)
    assert 'value="zip"' in page and 'value="delete"' not in page
    answer = client.post(
        f"/records/{clinic['record'].id}/files/bulk",
        data={"action": "delete", "ids": [str(done["attachment_id"])]},
    )
    assert answer.status_code == 403
    assert _start(client, clinic["record"].id, "b.txt", 10).status_code == 403
    assert (
        client.post(f"/files/{done['attachment_id']}/versions/{version.id}/restore", data={}).status_code
        == 403
    )


# --- who may: front desk, other clinics -------------------------------------------------------------------


def _every_file_url(app, ids: dict) -> list[tuple[str, str, dict]]:
    """(method, url, json body) for every route of the attachments blueprint, with real ids."""
    found = []
    for rule in app.url_map.iter_rules():
        if not rule.endpoint.startswith("attachments."):
            continue
        url = rule.rule
        for argument in rule.arguments:
            url = re.sub(rf"<(?:[a-z]+:)?{argument}>", str(ids[argument]), url)
        if rule.endpoint == "attachments.compare":
            url += f"?left={ids['version_id']}&right={ids['version_id']}"
        for method in sorted(rule.methods - {"HEAD", "OPTIONS"}):
            body = {
                "attachments.start_upload": {"name": "x.txt", "size": 10, "fingerprint": "x"},
                "attachments.part_urls": {"part_numbers": [1]},
                "attachments.complete_upload": {"parts": []},
            }.get(rule.endpoint)
            found.append((method, url, body))
    assert len(found) >= 16
    return found


def _call(client, method: str, url: str, body: dict | None):
    headers = _headers(client)
    if method == "GET":
        return client.get(url, headers=headers)
    if method == "DELETE":
        return client.delete(url, headers=headers)
    if body is not None:
        return client.post(url, json=body, headers=headers)
    return client.post(url, data={"action": "zip", "ids": ["1"]}, headers=headers)


@pytest.fixture
def one_of_everything(app, doctor, clinic) -> dict:
    """A file, an open upload and a zip job of the clinic's doctor: the ids every file URL needs."""
    record = clinic["record"]
    done = _uploaded(doctor, record.id, "a.txt", b"first file\n")
    plan = _start(doctor, record.id, "big.dcm", BIG_BYTES).get_json()
    doctor.post(
        f"/records/{record.id}/files/bulk", data={"action": "zip", "ids": [str(done["attachment_id"])]}
    )
    job = db.session.scalar(select(Job).where(Job.kind == "files.zip"))
    doctor.post("/logout", data={})
    return {
        "record_id": record.id,
        "attachment_id": done["attachment_id"],
        "version_id": _version(done["attachment_id"]).id,
        "public_id": plan["id"],
        "job_id": job.id,
    }


def test_front_desk_gets_403_on_every_file_url(app, client, clinic, one_of_everything):
    login(client, clinic["front_desk"].email)
    for method, url, body in _every_file_url(app, one_of_everything):
        answer = _call(client, method, url, body)
        assert answer.status_code == 403, (method, url, answer.status_code)
        assert b"first file" not in answer.data


def test_another_clinic_gets_404_on_every_file_url(app, client, one_of_everything, drain_jobs):
    drain_jobs()  # the fixture's zip, previews: their own access rows are written before counting
    elsewhere = make_tenant()
    login(client, make_user(elsewhere, "doctor").email)
    opened = db.session.scalar(select(func.count()).select_from(FileAccess))
    for method, url, body in _every_file_url(app, one_of_everything):
        answer = _call(client, method, url, body)
        assert answer.status_code == 404, (method, url, answer.status_code)
        assert b"first file" not in answer.data
    assert db.session.scalar(select(func.count()).select_from(FileAccess)) == opened


# --- S3 -------------------------------------------------------------------------------------------------


def test_on_s3_files_and_zips_are_redirects_to_presigned_urls(app, inline_jobs, doctor, clinic, moto_url):
    """The browser sends the bytes to S3 itself and fetches them from there: the app only signs."""
    storage = S3Storage(bucket=f"t-{uuid.uuid4().hex[:12]}", endpoint_url=moto_url)
    storage.ensure_bucket()
    app.extensions[STORAGE_EXTENSION] = storage
    record = clinic["record"]
    pdf = samples.pdf()
    plan = _start(doctor, record.id, "report.pdf", len(pdf)).get_json()
    assert plan["post"]["url"].startswith(moto_url)
    sent = requests.post(
        plan["post"]["url"], data=plan["post"]["fields"], files={"file": ("f", pdf)}, timeout=30
    )
    assert sent.status_code in (200, 201, 204), sent.text
    done = doctor.post(
        f"/uploads/{plan['id']}/complete", json={"parts": []}, headers=_headers(doctor)
    ).get_json()
    version = _version(done["attachment_id"])
    for what in ("download", "view"):
        answer = doctor.get(_file_url(done["attachment_id"], version.id, what))
        assert answer.status_code == 302 and answer.headers["Location"].startswith(moto_url)
        assert requests.get(answer.headers["Location"], timeout=30).content == pdf
    doctor.post(
        f"/records/{record.id}/files/bulk", data={"action": "zip", "ids": [str(done["attachment_id"])]}
    )
    job = db.session.scalar(select(Job).where(Job.kind == "files.zip"))
    answer = doctor.get(f"/files/zips/{job.id}/download")
    assert answer.status_code == 302 and answer.headers["Location"].startswith(moto_url)
    zipped = requests.get(answer.headers["Location"], timeout=30).content
    assert zipfile.ZipFile(io.BytesIO(zipped)).namelist() == ["report.pdf"]


def test_compare_shows_two_images_next_to_each_other(doctor, clinic):
    first = _uploaded(doctor, clinic["record"].id, "xray.png", samples.png())
    second = _uploaded(doctor, clinic["record"].id, "xray.png", samples.png((80, 60)))
    attachment_id = first["attachment_id"]
    versions = sorted(v.id for v in db.session.get(Attachment, attachment_id).versions)
    page = doctor.get(
        f"/files/{attachment_id}/compare", query_string={"left": versions[0], "right": versions[1]}
    )
    html = page.get_data(as_text=True)
    assert page.status_code == 200 and second["version"] == 2
    assert "Next to each other" in html and "Different content" in html
    for version_id in versions:
        assert _file_url(attachment_id, version_id, "view") in html


def test_a_finalized_record_offers_upload_only_with_an_addendum(doctor, clinic):
    record = clinic["record"]
    record.status, record.finalized_by_id = "finalized", clinic["doctor"].id
    record.finalized_at = record.visit_at
    db.session.commit()
    page = doctor.get(f"/records/{record.id}").get_data(as_text=True)
    assert "data-uploader" not in page
    assert "This record is finalized: a file can be added only with an addendum." in page
    answer = _start(doctor, record.id, "scan.txt", 10)
    assert answer.status_code == 422 and answer.get_json()["status"] == "rejected"
    assert "only with an addendum" in answer.get_json()["reason"]
    assert (
        doctor.post(f"/records/{record.id}/addenda", data={"text": "Outside scan attached."}).status_code
        == 303
    )
    page = doctor.get(f"/records/{record.id}").get_data(as_text=True)
    assert "data-uploader" in page and "New files go with the addendum of" in page
    (start_url,) = re.findall(r'data-start-url="([^"]+)"', page)
    assert "addendum=" in start_url
    body = {"name": "scan.txt", "size": 10, "type": "", "fingerprint": "scan.txt|10|1"}
    started = doctor.post(start_url.replace("&amp;", "&"), json=body, headers=_headers(doctor))
    assert started.status_code == 201, started.get_data(as_text=True)


# --- errors and the zip job come from the services ---------------------------------------------------------


def _actor(user) -> Actor:
    return Actor(tenant_id=user.tenant_id, user_id=user.id, role=user.role)


def test_the_zip_job_is_queued_by_the_files_service(app, doctor, clinic):
    done = _uploaded(doctor, clinic["record"].id, "a.txt", b"first file\n")
    record_id, actor = clinic["record"].id, _actor(clinic["doctor"])
    with pytest.raises(services.FileActionError, match="Choose at least one file"):
        services.start_zip(actor, record_id, [])
    with pytest.raises(NotAllowed):
        services.start_zip(_actor(clinic["front_desk"]), record_id, [done["attachment_id"]])
    other = make_user(make_tenant(), "doctor")
    with pytest.raises(NotFound):
        services.start_zip(_actor(other), record_id, [done["attachment_id"]])
    assert db.session.scalar(select(func.count()).select_from(Job).where(Job.kind == "files.zip")) == 0

    job_id = services.start_zip(actor, record_id, [done["attachment_id"]])
    job = db.session.get(Job, job_id)
    assert (job.kind, job.tenant_id, job.user_id, job.label) == (
        "files.zip",
        clinic["tenant"].id,
        clinic["doctor"].id,
        "Zip of files",
    )
    assert job.args == [clinic["doctor"].id, record_id, str(done["attachment_id"])]


def test_file_errors_are_domain_errors_answered_app_wide(app, doctor, clinic):
    actor = _actor(clinic["doctor"])
    with pytest.raises(NotFound):
        services.get_attachment(actor, 999_999)
    with pytest.raises(NotFound):
        uploads.get_upload(actor, "no-such-upload")
    assert issubclass(services.FileNotOpenable, Conflict)
    # The blueprint keeps only the answers the app-wide handler cannot give: the upload API's JSON and the
    # checksum page (502).
    handled = set(app.error_handler_spec["attachments"][None])
    assert services.FileNotOpenable not in handled and LookupError not in handled
    # Same statuses and texts as before: a page 404, the API's JSON 404.
    page = doctor.get("/files/999999")
    assert page.status_code == 404 and "Not found" in page.get_data(as_text=True)
    answer = _start(doctor, 999_999, "a.txt", 10)
    assert answer.status_code == 404
    assert answer.get_json() == {"status": "error", "reason": "There is no such record, file or upload."}
