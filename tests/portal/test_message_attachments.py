"""Photos and PDFs on messages, through the file machinery (files/patient_files.store_patient_file).

These need the documents helper's implementation of `store_patient_file`: until it is merged they are
skipped (the refusal of a file type, checked before anything is stored, runs either way).
"""

from __future__ import annotations

import io

import pytest
from sqlalchemy import func, select

from healthcrm.extensions import db
from healthcrm.portal.messages.models import Message, MessageAttachment, Thread
from healthcrm.tenant_scope import all_tenants
from tests.factories import login as sign_in
from tests.factories import make_patient, make_portal_user, make_tenant, make_user

# The smallest PNG (1×1, transparent) and a one-page PDF.
PNG = bytes.fromhex(
    "89504e470d0a1a0a0000000d4948445200000001000000010806000000"
    "1f15c4890000000d49444154789c6360000002000154a24f5d0000000049454e44ae426082"
)
PDF = (
    b"%PDF-1.4\n1 0 obj<</Type/Catalog/Pages 2 0 R>>endobj 2 0 obj<</Type/Pages/Kids[3 0 R]/Count 1>>endobj "
    b"3 0 obj<</Type/Page/MediaBox[0 0 10 10]/Parent 2 0 R>>endobj\ntrailer<</Root 1 0 R>>\n%%EOF\n"
)


def login(client, email: str):
    client.post("/logout", data={})
    return sign_in(client, email)


@pytest.fixture
def people(app, inline_jobs):
    tenant = make_tenant()
    coach = make_user(tenant, "coach")
    patient = make_patient(tenant, assigned_coach_id=coach.id)
    other_patient = make_patient(tenant, assigned_coach_id=coach.id)
    db.session.commit()
    return {
        "coach": coach,
        "me": make_portal_user(patient),
        "other": make_portal_user(other_patient),
    }


def _count(model) -> int:
    with all_tenants("test"):
        return db.session.scalar(select(func.count()).select_from(model))


def _send_with(client, *files, subject="A photo"):
    return client.post(
        "/portal/messages/new",
        data={
            "to": "coach",
            "subject": subject,
            "body": "See the attached file.",
            "files": [(io.BytesIO(data), name) for name, data in files],
        },
        content_type="multipart/form-data",
    )


def _thread(subject: str) -> Thread:
    with all_tenants("test"):
        return db.session.scalar(select(Thread).where(Thread.subject == subject))


def test_a_file_that_is_not_a_photo_or_a_pdf_is_refused_before_anything_is_stored(client, people):
    login(client, people["me"].email)
    response = _send_with(client, ("notes.txt", b"just some text"))
    assert response.status_code == 422
    assert "only photos and PDF files" in response.get_data(as_text=True)
    assert _count(Thread) == 0 and _count(Message) == 0


def test_a_photo_and_a_pdf_attach_and_download_for_the_patient_and_the_coach(client, people):
    login(client, people["me"].email)
    assert _send_with(client, ("knee.png", PNG), ("letter.pdf", PDF)).status_code == 303
    thread = _thread("A photo")
    with all_tenants("test"):
        links = list(db.session.scalars(select(MessageAttachment)))
    assert len(links) == 2
    page = client.get(f"/portal/messages/{thread.id}").get_data(as_text=True)
    assert "knee.png" in page and "letter.pdf" in page
    png_id = next(link.attachment_id for link in links if link.attachment.filename == "knee.png")
    download = client.get(f"/portal/messages/{thread.id}/files/{png_id}")
    assert download.status_code == 200 and download.data == PNG
    assert download.headers["Content-Disposition"].startswith("attachment")
    login(client, people["coach"].email)
    staff = client.get(f"/care/inbox/{thread.id}/files/{png_id}")
    assert staff.status_code == 200 and staff.data == PNG


def test_another_patients_attachment_answers_404(client, people):
    login(client, people["other"].email)
    _send_with(client, ("theirs.png", PNG), subject="Theirs")
    theirs = _thread("Theirs")
    with all_tenants("test"):
        their_file = db.session.scalar(select(MessageAttachment.attachment_id))
    login(client, people["me"].email)
    _send_with(client, ("mine.png", PNG), subject="Mine")
    mine = _thread("Mine")
    # Their thread, and their file through my own thread: both not found.
    assert client.get(f"/portal/messages/{theirs.id}/files/{their_file}").status_code == 404
    assert client.get(f"/portal/messages/{mine.id}/files/{their_file}").status_code == 404
    # Staff too: a file reached only through the thread it is on.
    login(client, people["coach"].email)
    assert client.get(f"/care/inbox/{mine.id}/files/{their_file}").status_code == 404


def test_a_reply_from_the_care_team_can_carry_a_file(client, people):
    login(client, people["me"].email)
    _send_with(client, ("knee.png", PNG))
    thread = _thread("A photo")
    login(client, people["coach"].email)
    response = client.post(
        f"/care/inbox/{thread.id}/reply",
        data={"body": "Here are the exercises.", "files": [(io.BytesIO(PDF), "exercises.pdf")]},
        content_type="multipart/form-data",
    )
    assert response.status_code == 303
    assert _count(MessageAttachment) == 2
    login(client, people["me"].email)
    assert "exercises.pdf" in client.get(f"/portal/messages/{thread.id}").get_data(as_text=True)
