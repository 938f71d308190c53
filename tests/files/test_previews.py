"""Previews: image thumbnails, and the summary and PNG of DICOM studies, from real sample files."""

from __future__ import annotations

import io
import time
import warnings
from datetime import date

import numpy as np
import pydicom
import pytest
from PIL import Image

from healthcrm.files import previews as previews_module
from healthcrm.files.previews import (
    DicomSummary,
    DicomUnreadable,
    dicom_png,
    dicom_summary,
    thumbnail,
    thumbnail_content_type,
)
from tests.files import samples

RED, BLUE = (255, 0, 0), (0, 0, 255)


class OneWayStream(io.RawIOBase):
    """A stream that cannot seek, like a network body."""

    def __init__(self, data: bytes) -> None:
        self._source = io.BytesIO(data)

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return False

    def readinto(self, buffer) -> int:
        chunk = self._source.read(len(buffer))
        buffer[: len(chunk)] = chunk
        return len(chunk)


def opened(data: bytes | None) -> Image.Image:
    assert data is not None
    image = Image.open(io.BytesIO(data))
    image.load()
    return image


def near(pixel, colour, tolerance=40) -> bool:
    return all(abs(a - b) <= tolerance for a, b in zip(pixel[:3], colour, strict=True))


def test_jpeg_thumbnail_is_a_small_jpeg_keeping_the_aspect():
    image = opened(thumbnail(io.BytesIO(samples.jpeg((2000, 1000))), "jpeg"))
    assert (image.format, image.size) == ("JPEG", (320, 160))
    assert thumbnail_content_type("jpeg") == "image/jpeg"


def test_jpeg_thumbnail_follows_exif_orientation():
    # Stored wide (red left, blue right) with orientation 6: shown turned a quarter clockwise, red on top.
    image = opened(
        thumbnail(io.BytesIO(samples.jpeg((800, 400), orientation=samples.ROTATED_CLOCKWISE)), "jpeg")
    )
    assert image.size == (160, 320)
    assert near(image.getpixel((80, 10)), RED)
    assert near(image.getpixel((80, 310)), BLUE)


def test_large_jpeg_is_decoded_at_a_reduced_scale():
    # 4000 × 3000 would take 36 MB decoded in full; draft mode decodes an eighth of each side.
    started = time.perf_counter()
    image = opened(thumbnail(io.BytesIO(samples.jpeg((4000, 3000))), "jpeg", max_px=200))
    assert image.size == (200, 150)
    assert time.perf_counter() - started < 2


def test_png_thumbnail_keeps_transparency_and_small_images_keep_their_size():
    image = opened(thumbnail(io.BytesIO(samples.png((64, 48), "RGBA")), "png"))
    assert (image.format, image.mode, image.size) == ("PNG", "RGBA", (64, 48))
    assert thumbnail_content_type("png") == "image/png"


def test_tiff_thumbnail_is_the_first_page():
    image = opened(thumbnail(io.BytesIO(samples.tiff((640, 480), compression="tiff_lzw", pages=3)), "tiff"))
    assert (image.format, image.size) == ("PNG", (320, 240))
    assert near(image.getpixel((10, 120)), RED)  # page one is red and blue; the other pages all blue


def test_fax_tiff_thumbnail_is_grayscale():
    page = Image.new("1", (1728, 2200), 1)
    page.paste(0, (100, 100, 1600, 103))  # a thin line, as text strokes are
    out = io.BytesIO()
    page.save(out, format="TIFF", compression="group4")
    image = opened(thumbnail(io.BytesIO(out.getvalue()), "tiff"))
    assert (image.mode, image.size) == ("L", (251, 320))
    assert min(image.crop((20, 10, 230, 20)).getextrema()) < 200  # the line is still visible


def test_16_bit_tiff_thumbnail_is_stretched_to_8_bits():
    image = opened(thumbnail(io.BytesIO(samples.tiff_16_bit()), "tiff"))
    assert image.mode == "L"
    assert image.getpixel((0, 0)) == 0
    assert image.getpixel((63, 0)) == 255


def test_heic_thumbnail():
    pytest.importorskip("pillow_heif")
    image = opened(thumbnail(io.BytesIO(samples.heic((800, 400))), "heic"))
    assert (image.format, image.size) == ("JPEG", (320, 160))
    assert near(image.getpixel((10, 80)), RED, tolerance=60)


@pytest.mark.parametrize("kind", ["pdf", "text", "csv", "dicom", "exe"])
def test_no_thumbnail_for_other_kinds(kind):
    assert thumbnail(io.BytesIO(samples.jpeg()), kind) is None


def test_content_that_is_not_the_kind_gives_no_thumbnail():
    # Only the sniffed format's parser may run: PNG bytes labelled JPEG are not decoded as PNG.
    assert thumbnail(io.BytesIO(samples.png()), "jpeg") is None
    assert thumbnail(io.BytesIO(samples.jpeg()[:300]), "jpeg") is None


@pytest.mark.parametrize("size", [(100_000, 100_000), (12_000, 12_000)])
def test_decompression_bomb_gives_none_fast(size):
    started = time.perf_counter()
    assert thumbnail(io.BytesIO(samples.png_bomb(*size)), "png") is None
    assert time.perf_counter() - started < 1


def test_unseekable_stream_is_spooled():
    image = opened(thumbnail(OneWayStream(samples.jpeg((640, 320))), "jpeg"))
    assert image.size == (320, 160)


def test_seekable_stream_is_left_where_it_was():
    stream = io.BytesIO(samples.png())
    thumbnail(stream, "png")
    assert stream.tell() == 0


def test_dicom_summary_of_a_ct():
    summary = dicom_summary(io.BytesIO(samples.dicom("CT_small.dcm")))
    assert summary == DicomSummary(
        patient_name="CompressedSamples, CT1",
        patient_id="1CT1",
        study_date=date(2004, 1, 19),
        modality="CT",
        body_part="",
        study_description="e+1",
        series_description="",
        series_number=1,
        rows=128,
        columns=128,
        frames=1,
        transfer_syntax="Explicit VR Little Endian",
    )
    assert summary.as_dict()["study_date"] == "2004-01-19"


def test_dicom_summary_counts_frames_and_tolerates_missing_tags():
    dose = dicom_summary(io.BytesIO(samples.dicom("rtdose.dcm")))
    assert (dose.modality, dose.frames, dose.rows, dose.columns) == ("RTDOSE", 15, 10, 10)
    plan = dicom_summary(io.BytesIO(samples.dicom("rtplan.dcm")))  # no image at all
    assert (plan.modality, plan.rows, plan.frames) == ("RTPLAN", None, 0)


def test_dicom_summary_with_a_bad_date():
    ds = pydicom.dcmread(io.BytesIO(samples.dicom("CT_small.dcm")))
    with warnings.catch_warnings():
        # pydicom warns that the value is not a DA, which is the point here.
        warnings.filterwarnings("ignore", category=UserWarning, module=r"pydicom\.")
        ds.StudyDate = "2004-13-45"
    ds.SeriesNumber = None
    out = io.BytesIO()
    ds.save_as(out)
    summary = dicom_summary(io.BytesIO(out.getvalue()))
    assert (summary.study_date, summary.series_number, summary.patient_id) == (None, None, "1CT1")


def test_dicom_summary_of_something_else_raises():
    with pytest.raises(DicomUnreadable):
        dicom_summary(io.BytesIO(samples.pdf()))


def dicom_image(data: bytes | None, max_px: int = 1024) -> Image.Image:
    image = opened(data)
    assert image.format == "PNG"
    return image


def test_dicom_png_of_a_ct_matches_rows_and_columns_and_has_contrast():
    image = dicom_image(dicom_png(io.BytesIO(samples.dicom("CT_small.dcm"))))
    assert (image.mode, image.size) == ("L", (128, 128))
    low, high = image.getextrema()
    assert high - low > 100
    assert len(np.unique(np.asarray(image))) > 50


def test_dicom_png_is_scaled_down_to_max_px():
    image = dicom_image(dicom_png(io.BytesIO(samples.dicom("JPEG2000.dcm")), max_px=256))
    assert image.size == (64, 256)  # 256 columns × 1024 rows


def test_dicom_png_applies_the_window():
    data = samples.dicom("MR_small.dcm")  # Window Center 600, Width 1600
    ds = pydicom.dcmread(io.BytesIO(data))
    values = ds.pixel_array.astype(float)
    expected = np.clip(((values - 599.5) / 1599 + 0.5) * 255, 0, 255).round()
    image = np.asarray(dicom_image(dicom_png(io.BytesIO(data))))
    assert np.abs(image.astype(float) - expected).max() <= 1


def test_dicom_png_inverts_monochrome1():
    ds = pydicom.dcmread(io.BytesIO(samples.dicom("CT_small.dcm")))
    normal = np.asarray(dicom_image(dicom_png(io.BytesIO(samples.dicom("CT_small.dcm")))))
    ds.PhotometricInterpretation = "MONOCHROME1"
    out = io.BytesIO()
    ds.save_as(out)
    inverted = np.asarray(dicom_image(dicom_png(io.BytesIO(out.getvalue()))))
    assert np.array_equal(inverted, 255 - normal)


def test_dicom_png_of_a_multi_frame_file_is_the_first_frame():
    data = samples.dicom("rtdose.dcm")
    image = dicom_image(dicom_png(io.BytesIO(data)))
    assert image.size == (10, 10)
    first = pydicom.dcmread(io.BytesIO(data)).pixel_array[0].astype(float)
    expected = (first - first.min()) / (first.max() - first.min()) * 255
    assert np.abs(np.asarray(image, dtype=float) - expected).max() <= 1


@pytest.mark.parametrize("name", ["examples_palette.dcm", "examples_ybr_color.dcm", "SC_rgb_rle_16bit.dcm"])
def test_dicom_png_of_colour_images_is_rgb(name):
    ds = pydicom.dcmread(io.BytesIO(samples.dicom(name)), stop_before_pixels=True)
    image = dicom_image(dicom_png(io.BytesIO(samples.dicom(name))))
    assert (image.mode, image.size) == ("RGB", (ds.Columns, ds.Rows))
    assert len(np.unique(np.asarray(image).reshape(-1, 3), axis=0)) > 1


def test_deflated_dicom_is_rendered():
    image = dicom_image(dicom_png(io.BytesIO(samples.dicom("image_dfl.dcm"))))
    assert image.size == (512, 512)


@pytest.mark.parametrize(
    "name",
    [
        "MR_small_jpeg_ls_lossless.dcm",  # JPEG-LS: no decoder installed
        "JPEG-lossy.dcm",  # 12-bit JPEG: Pillow cannot decode it
        "waveform_ecg.dcm",  # no pixel data
        "rtplan.dcm",  # no pixel data
        "MR_truncated.dcm",  # pixel data cut short
    ],
)
def test_dicom_png_is_none_when_it_cannot_render(name):
    assert dicom_png(io.BytesIO(samples.dicom(name))) is None


def test_dicom_png_from_an_unseekable_stream():
    image = dicom_image(dicom_png(OneWayStream(samples.dicom("MR_small.dcm"))))
    assert image.size == (64, 64)


def test_every_shipped_dicom_file_renders_or_gives_none():
    rendered = 0
    for path in samples.shipped_dicom_files():
        result = dicom_png(io.BytesIO(path.read_bytes()), max_px=128)
        if result is not None:
            assert max(opened(result).size) <= 128, path.name
            rendered += 1
    assert rendered > 40


def test_a_frame_too_big_to_decode_safely_gets_no_image(monkeypatch):
    monkeypatch.setattr(previews_module, "DICOM_FRAME_MAX_BYTES", 1000)
    with open(pydicom.data.get_testdata_file("CT_small.dcm"), "rb") as src:
        assert dicom_png(src) is None
