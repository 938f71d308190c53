"""The share's PDF and CSV exports, and the watermarks on what a share shows."""

from __future__ import annotations

import csv
import io
from datetime import datetime, timedelta

import numpy as np
import pypdfium2 as pdfium
import pytest
from PIL import Image
from pypdf import PdfReader
from reportlab.lib.pagesizes import A4
from reportlab.pdfgen.canvas import Canvas

from healthcrm.extensions import db
from healthcrm.records.models import MedicalRecord
from healthcrm.sharing.content import shared_content
from healthcrm.sharing.exports import build_pdf, labs_csv
from healthcrm.sharing.exports.page import MARGIN
from healthcrm.sharing.models import SCOPE_TYPES
from healthcrm.sharing.watermark import (
    UnreadableImage,
    UnreadablePdf,
    pdf_page_count,
    pdf_page_image,
    pdf_pages_as_images,
    watermark_image,
    watermark_text,
)
from tests.factories import make_tenant, make_user
from tests.sharing.factories import add_lab, make_share, make_shared_patient

ACCESSED = datetime(2026, 4, 2, 13, 45, 30)
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


@pytest.fixture
def clinic(app):
    tenant = make_tenant()
    return tenant, make_user(tenant, "doctor")


def _pdf(share) -> tuple[list[str], int, list[int]]:
    """The text of each page, the page count build_pdf returned, and the progress it reported."""
    out = io.BytesIO()
    seen: list[int] = []
    pages = build_pdf(shared_content(share), watermark_text(share, ACCESSED), out, seen.append)
    reader = PdfReader(io.BytesIO(out.getvalue()))
    return [page.extract_text() for page in reader.pages], pages, seen


def test_the_pdf_watermark_hides_nothing_on_the_page_body(clinic):
    """The export's pages carry the watermark in the side margins and the footer: rendered with and
    without it, the pages differ only there."""
    share = make_share(make_shared_patient(*clinic))
    renders = []
    for text in (watermark_text(share, ACCESSED), ""):
        out = io.BytesIO()
        build_pdf(shared_content(share), text, out)
        document = pdfium.PdfDocument(out.getvalue())
        try:
            renders.append(np.asarray(document[0].render(scale=1).to_pil().convert("L")).astype(int))
        finally:
            document.close()
    marked = np.abs(renders[0] - renders[1]) > 8
    margin, footer = round(MARGIN), round(MARGIN)  # one point is one pixel at scale 1
    assert marked[:, :margin].any() and marked[:, -margin:].any(), "both side margins carry it"
    assert not marked[:-footer, margin:-margin].any(), "nothing is drawn over the page's body"


def test_watermark_names_the_recipient_the_share_and_the_minute(clinic):
    share = make_share(make_shared_patient(*clinic), recipient_name="Dr Ada\nLovelace")
    assert (
        watermark_text(share, ACCESSED)
        == f"Shared with Dr Ada Lovelace · share #{share.id} · 2026-04-02T13:45Z"
    )
    assert watermark_text(share, ACCESSED, "America/Chicago").endswith("2026-04-02T08:45-05:00")


def test_pdf_has_the_watermark_on_every_page_and_the_shared_content(clinic):
    patient = make_shared_patient(*clinic)
    share = make_share(patient, created_by_staff=True)  # staff-made: addenda and notes shown
    texts, pages, progress = _pdf(share)
    watermark = watermark_text(share, ACCESSED)
    assert pages == len(texts) >= 2
    for number, text in enumerate(texts, start=1):
        assert watermark in text
        assert f"page {number} of {pages}" in text
        assert f"Shared health record — {patient.full_name}" in text
    everything = "\n".join(texts)
    assert "page 1 of" in texts[0]
    assert "92 U/L" in everything  # the latest ALT
    assert "Summary" in everything and "Visit records" in everything
    assert "Penicillin" in everything and "Hepatitis B" in everything
    assert "MELD 3.0" in everything and "bilirubin 2.1 mg/dL" in everything  # a score with its inputs
    assert "Source:" in everything  # insights name their data
    assert "amended after sharing" in everything and "INR repeated: 1.6 confirmed." in everything
    assert "Draft, never shared" not in everything
    assert progress[0] == 0 and progress[-1] == 100 and progress == sorted(set(progress))


def test_a_long_lab_history_repeats_the_table_header_on_every_page(clinic):
    patient = make_shared_patient(*clinic)
    start = datetime(2024, 1, 1, 9)
    for day in range(160):
        add_lab(patient, "2345-7", "Glucose", 80 + day % 40, "mg/dL", start + timedelta(days=day), 70, 99)
    db.session.commit()
    texts = _pdf(make_share(patient, scope=SCOPE_TYPES, scope_types=["labs"]))[0]
    # Pages with rows of the glucose table (its results are the only ones of 2024).
    table_pages = [text for text in texts if text.count(" 2024 ") > 10]
    assert len(table_pages) >= 3
    assert all("Observed" in text and "Reference range" in text for text in table_pages)


def test_patient_entered_text_is_shown_literally(clinic):
    patient = make_shared_patient(*clinic)
    record = db.session.scalars(
        db.select(MedicalRecord).where(
            MedicalRecord.patient_id == patient.id, MedicalRecord.status == "finalized"
        )
    ).first()
    record.chief_complaint = 'Pain <b>& "swelling"</b> <font size=40>'
    record.notes = "Line one\nLine two & <three>"
    db.session.commit()
    everything = "\n".join(_pdf(make_share(patient, created_by_staff=True))[0])
    assert 'Pain <b>& "swelling"</b> <font size=40>' in everything
    assert "Line two & <three>" in everything


def test_a_share_of_labs_only_has_no_records_section(clinic):
    patient = make_shared_patient(*clinic)
    everything = "\n".join(_pdf(make_share(patient, scope=SCOPE_TYPES, scope_types=["labs"]))[0])
    assert "Lab results" in everything and "92 U/L" in everything
    for absent in (
        "Visit records",
        "Fatigue and itching",
        "Allergies",
        "Penicillin",
        "Immunizations",
        "Hepatitis B",
    ):
        assert absent not in everything


def test_pdf_shows_lab_units_as_people_write_them_and_the_csv_keeps_ucum(clinic):
    patient = make_shared_patient(*clinic)
    add_lab(patient, "777-3", "Platelets", 122, "10*3/uL", datetime(2026, 3, 9, 9), 150, 450)
    add_lab(patient, "777-3", "Platelets", 131, "10*3/uL", datetime(2026, 3, 1, 9), 150, 450)
    db.session.commit()
    share = make_share(patient)
    everything = "\n".join(_pdf(share)[0])
    assert "122 10³/µL" in everything and "150–450 10³/µL" in everything
    assert "10*3/uL" not in everything
    assert "10*3/uL" in labs_csv(shared_content(share))  # machine-readable: the UCUM code as stored


def test_labs_csv_round_trips_and_neutralises_formulas(clinic):
    patient = make_shared_patient(*clinic)
    add_lab(
        patient, "=cmd|' /C calc'!A0", "@SUM(A1)", None, "+1", datetime(2026, 3, 20, 8), value_text="=cmd"
    )
    add_lab(patient, "1925-5", "Base excess", -2.5, "mmol/L", datetime(2026, 3, 21, 8), -2, 2)
    db.session.commit()
    content = shared_content(make_share(patient))
    rows = list(csv.DictReader(io.StringIO(labs_csv(content))))
    assert len(rows) == len(content.labs)
    assert list(rows[0]) == ["code", "name", "value", "unit", "ref_low", "ref_high", "flag", "observed_at"]
    alt = next(row for row in rows if row["code"] == "1742-6" and row["value"] == "92")
    assert alt == {**alt, "name": "ALT", "unit": "U/L", "ref_low": "7", "ref_high": "56", "flag": "H"}
    assert alt["observed_at"] == "2026-03-09T15:00:00Z"
    hostile = next(row for row in rows if row["name"].endswith("SUM(A1)"))
    assert (hostile["code"], hostile["name"], hostile["value"], hostile["unit"]) == (
        "'=cmd|' /C calc'!A0",
        "'@SUM(A1)",
        "'=cmd",
        "'+1",
    )
    base_excess = next(row for row in rows if row["name"] == "Base excess")
    assert (base_excess["value"], base_excess["ref_low"], base_excess["flag"]) == ("-2.5", "-2", "L")


def _image(fmt: str, size: tuple[int, int], mode: str = "RGB") -> bytes:
    out = io.BytesIO()
    Image.new(mode, size, "white" if mode == "RGB" else 200).save(out, format=fmt)
    return out.getvalue()


@pytest.mark.parametrize(
    ("fmt", "size"), [("PNG", (3000, 2000)), ("JPEG", (1200, 1800)), ("TIFF", (300, 200))]
)
def test_watermark_image_is_a_bounded_png_that_differs_from_the_input(fmt, size):
    original = _image(fmt, size)
    marked = watermark_image(original, "Shared with Dr Who · share #7 · 2026-04-02T13:45Z", max_px=1600)
    assert marked.startswith(PNG_MAGIC) and marked != original
    with Image.open(io.BytesIO(marked)) as image:
        assert max(image.size) <= 1600
        assert image.getextrema() != ((255, 255), (255, 255), (255, 255))  # no longer all white
    with Image.open(io.BytesIO(watermark_image(original, "x", max_px=400))) as small:
        assert max(small.size) <= 400


def test_watermark_image_refuses_what_is_not_a_stored_image_kind():
    gif = io.BytesIO()
    Image.new("RGB", (10, 10)).save(gif, format="GIF")
    for content in (gif.getvalue(), b"%PDF-1.7 not an image", b""):
        with pytest.raises(UnreadableImage):
            watermark_image(content, "x")


def _pdf_of(pages: int, size: tuple[float, float] = A4) -> io.BytesIO:
    out = io.BytesIO()
    canvas = Canvas(out, pagesize=size)
    for number in range(1, pages + 1):
        canvas.drawString(72, 720, f"Scanned report page {number}")
        canvas.showPage()
    canvas.save()
    out.seek(0)
    return out


def test_pdf_pages_become_png_images_up_to_the_page_limit():
    images = pdf_pages_as_images(_pdf_of(2), dpi=60)
    assert len(images) == 2
    for png in images:
        assert png.startswith(PNG_MAGIC)
        with Image.open(io.BytesIO(png)) as page:
            width, height = page.size
            assert abs(width - A4[0] * 60 / 72) <= 1 and abs(height - A4[1] * 60 / 72) <= 1
    assert len(pdf_pages_as_images(_pdf_of(2), max_pages=1)) == 1
    # Watermarked, as a share without downloads shows them.
    assert watermark_image(images[0], "Shared with Dr Who").startswith(PNG_MAGIC)


def test_pdf_pages_of_impossible_size_or_damaged_pdfs_are_refused():
    with pytest.raises(UnreadablePdf):
        pdf_pages_as_images(_pdf_of(1, (20_000, 300)))
    with pytest.raises(UnreadablePdf):
        pdf_pages_as_images(io.BytesIO(b"%PDF-1.7\n garbage"))


def test_one_pdf_page_is_rendered_alone_and_pages_are_counted():
    assert pdf_page_count(_pdf_of(2)) == 2
    second = pdf_page_image(_pdf_of(2), 1)
    assert second is not None and second.startswith(b"\x89PNG")
    assert pdf_page_image(_pdf_of(2), 2) is None


def test_old_export_pdfs_are_deleted(app):
    from datetime import timedelta

    from healthcrm.clock import utcnow
    from healthcrm.files.storage import get_storage
    from healthcrm.jobs.models import FINISHED, Job
    from healthcrm.sharing.export_tasks import delete_old_exports, export_key

    tenant = make_tenant()
    storage = get_storage(app)
    old_key, new_key = export_key(tenant.id), export_key(tenant.id)
    for key in (old_key, new_key):
        storage.put_stream(key, io.BytesIO(b"%PDF-1.4 test"), "application/pdf")
    for key, age in ((old_key, timedelta(days=2)), (new_key, timedelta(minutes=5))):
        db.session.add(
            Job(
                id=key[-36:], tenant_id=tenant.id, kind="sharing.export_pdf", label="PDF", args=[1, 1],
                status=FINISHED, finished_at=utcnow() - age, result={"made": True, "key": key},
            )
        )  # fmt: skip
    db.session.commit()
    assert delete_old_exports() == 1
    assert storage.head(old_key) is None and storage.head(new_key) is not None
    assert delete_old_exports() == 0
