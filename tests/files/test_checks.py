"""Content checks: what a file really is, which files may be attached, and when gzip is worth it."""

from __future__ import annotations

import gzip
import hashlib
import io
import random
import warnings

import filetype
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydicom import dcmread

from healthcrm.files.checks import (
    ALLOWED_TYPES,
    HEAD_BYTES,
    STREAM_CHUNK_BYTES,
    ContentRejected,
    Kind,
    check_size,
    dicom_transfer_syntax,
    gunzip_stream,
    gzip_stream,
    hashing_copy,
    human_size,
    should_compress,
    sniff,
    tiff_compression,
    worth_keeping,
)
from tests.files import samples

MiB = 1024 * 1024
ALLOWED_LIST = "only PDF, JPEG, PNG, HEIC, TIFF, DICOM, plain text and CSV files can be attached"


def rejection(data: bytes, filename: str) -> str:
    with pytest.raises(ContentRejected) as caught:
        sniff(data[:HEAD_BYTES], filename)
    assert str(caught.value) == caught.value.reason
    return caught.value.reason


def test_allowed_types_are_the_eight_kinds_with_their_content_types():
    assert {kind: allowed.content_type for kind, allowed in ALLOWED_TYPES.items()} == {
        "pdf": "application/pdf",
        "jpeg": "image/jpeg",
        "png": "image/png",
        "heic": "image/heic",
        "tiff": "image/tiff",
        "dicom": "application/dicom",
        "text": "text/plain",
        "csv": "text/csv",
    }
    assert all(allowed.label for allowed in ALLOWED_TYPES.values())


@pytest.mark.parametrize(
    ("data", "filename", "kind"),
    [
        (samples.pdf(), "scan.pdf", "pdf"),
        (samples.jpeg(), "photo.jpg", "jpeg"),
        (samples.png(), "chart.png", "png"),
        (samples.tiff(), "fax.tif", "tiff"),
        (samples.tiff(compression="tiff_lzw"), "fax.tiff", "tiff"),
        (samples.dicom("CT_small.dcm"), "ct.dcm", "dicom"),
        (samples.dicom("MR_small_bigendian.dcm"), "mr", "dicom"),
        (samples.text(), "note.txt", "text"),
        (samples.csv(), "labs.csv", "csv"),
    ],
)
def test_sniff_recognises_each_allowed_kind(data, filename, kind):
    sniffed = sniff(data[:HEAD_BYTES], filename)
    assert sniffed.kind == kind
    assert sniffed.content_type == ALLOWED_TYPES[kind].content_type
    assert sniffed.label == ALLOWED_TYPES[kind].label


def test_sniff_recognises_heic():
    pytest.importorskip("pillow_heif")
    assert sniff(samples.heic()[:HEAD_BYTES], "IMG_0001.HEIC").kind == "heic"


def test_heic_brands_without_filetype_knowing_them():
    # 10-bit iPhone photos say "heix"; some phones say "mif1" and list heic only as compatible.
    heix = b"\x00\x00\x00\x18ftypheix\x00\x00\x00\x00mif1heix" + bytes(64)
    mif1 = b"\x00\x00\x00\x1cftypmif1\x00\x00\x00\x00mif1miafheic" + bytes(64)
    avif = b"\x00\x00\x00\x1cftypavif\x00\x00\x00\x00mif1miafavif" + bytes(64)
    assert sniff(heix, "a.heic").kind == "heic"
    assert sniff(mif1, "a.heic").kind == "heic"
    assert "AVIF" in rejection(avif, "a.heic")


def test_type_comes_from_content_not_name():
    assert sniff(samples.png(), "photo.jpg").kind == "png"
    assert sniff(samples.jpeg(), "document.pdf").kind == "jpeg"
    assert sniff(samples.pdf(), "notes.txt").kind == "pdf"
    assert sniff(samples.text(), "scan.pdf").kind == "text"


def test_dicom_with_tiff_preamble_is_dicom():
    data = samples.dicom_with_tiff_preamble()
    assert filetype.guess_mime(data[:HEAD_BYTES]) == "image/tiff"  # what a library alone would say
    sniffed = sniff(data[:HEAD_BYTES], "dual.tif")
    assert (sniffed.kind, sniffed.content_type) == ("dicom", "application/dicom")


def test_html_named_pdf_is_rejected_saying_both():
    reason = rejection(samples.html(), "report.pdf")
    assert reason.startswith("the file is named .pdf but is really a web page")
    assert "HTML" in reason
    assert ALLOWED_LIST in reason


def test_html_with_its_own_name_is_rejected_for_what_it_is():
    assert rejection(samples.html(), "page.htm").startswith("the file looks like a web page")


@pytest.mark.parametrize(
    "content",
    [
        b"<!doctype HTML><title>x</title>",
        b"\xef\xbb\xbf   \r\n\t<HTML>",
        b"<html lang='en'>",
        b"<body onload=alert(1)>",
        b"<IFRAME src='https://example.org'></iframe>",
        b"<script>fetch('/api')</script>",
        b"Dear doctor,\nplease see below.\n<script src=x.js></script>\n",
        b"<?xml version='1.0'?><record/>",
        b"#!/bin/sh\nrm -rf /\n",
    ],
)
def test_markup_and_scripts_are_rejected_though_text(content):
    reason = rejection(content, "note.txt")
    assert reason.startswith("the file is named .txt but is really ")
    assert ALLOWED_LIST in reason


def test_svg_is_rejected_as_svg():
    assert "an SVG image" in rejection(samples.svg(), "drawing.svg")
    assert "named .png but is really an SVG image" in rejection(samples.svg(), "drawing.png")


def test_text_mentioning_tags_far_down_is_text():
    note = b"Plain note.\n" * 200 + b"Patient pasted <script> into the portal.\n"
    assert sniff(note, "note.txt").kind == "text"
    assert sniff(b"BP <140/90, weight > 80 kg\n", "note.txt").kind == "text"


@pytest.mark.parametrize("note", [b"BMI 31.2, BP 140/90\n", b"ID3 antibody panel\n", b"FWS: follow up\n"])
def test_text_starting_like_a_short_signature_is_text(note):
    assert sniff(note * 5, "note.txt").kind == "text"


def test_text_based_documents_are_not_plain_text():
    assert "PostScript" in rejection(b"%!PS-Adobe-3.0\n%%Pages: 1\n", "letter.txt")
    assert "RTF" in rejection(b"{\\rtf1\\ansi Patient letter}\n", "letter.txt")
    assert "BMP image" in rejection(b"BM" + bytes(60), "scan.png")


def test_programs_and_archives_say_what_they_are():
    assert "a Windows program (EXE)" in rejection(samples.exe(), "setup.exe")
    reason = rejection(samples.zip_archive(), "scan.pdf")
    assert reason.startswith("the file is named .pdf but is really a ZIP archive")


def test_unknown_binary_is_rejected():
    noise = random.Random(7).randbytes(4096)
    assert rejection(noise, "blob.bin").startswith("the file's type could not be recognised: ")
    assert rejection(noise, "ct.dcm").startswith("the file is named .dcm but its content is not DICOM: ")


def test_empty_file_is_rejected():
    assert rejection(b"", "empty.pdf") == "the file is empty."


def test_text_with_bom_is_text():
    assert sniff(b"\xef\xbb\xbfHello\n", "note.txt").kind == "text"
    assert sniff(b"\xef\xbb\xbfa;b\n1;2\n", "labs.csv").kind == "csv"


def test_multibyte_character_cut_by_the_end_of_the_head_is_still_text():
    data = ("é" * HEAD_BYTES).encode()
    head = data[: HEAD_BYTES - 1]  # ends with the first byte of "é"
    assert sniff(head, "note.txt").kind == "text"


def test_invalid_utf8_in_the_middle_is_not_text():
    reason = rejection(b"caf\xe9 au lait\n" * 10, "note.txt")
    assert "encoding other than UTF-8" in reason


def test_utf16_text_asks_for_utf8():
    reason = rejection("a,b\n1,2\n".encode("utf-16"), "labs.csv")
    assert "UTF-16" in reason and "UTF-8" in reason


def test_nul_or_many_control_characters_are_not_text():
    rejection(b"hello\x00world\n", "note.txt")
    rejection(b"ab\x01\x02\x03cd\x04\x05\n" * 20, "note.txt")
    assert sniff(b"page one\n\x0cpage two\n", "note.txt").kind == "text"  # a form feed is fine


@pytest.mark.parametrize(
    ("content", "filename", "kind"),
    [
        (b"a,b,c\n1,2,3\n4,5,6\n", "labs.csv", "csv"),
        (b"a;b;c\r\n1;2;3\r\n", "labs.CSV", "csv"),
        (b"a\tb\n1\t2\n", "labs.csv", "csv"),
        (b'name,note\n"Doe, J","line one\nline two"\nRoe,ok\n', "labs.csv", "csv"),
        (b"a,b\n", "header-only.csv", "csv"),
        (b"a,b,c\n1,2\n", "ragged.csv", "text"),
        (b"only\none\ncolumn\n", "list.csv", "text"),
        (b"a,b,c\n1,2,3\n", "labs.txt", "text"),
        (b"a,b,c\n1,2,3\n", "labs", "text"),
    ],
)
def test_csv_needs_the_name_and_consistent_columns(content, filename, kind):
    assert sniff(content, filename).kind == kind


def test_long_csv_cut_by_the_head_is_csv():
    rows = b"".join(
        b"2024-01-%02d,HbA1c,%d.%d,%%\n" % (day % 28 + 1, day % 9, day % 7) for day in range(2000)
    )
    data = b"date,test,value,unit\n" + rows
    assert len(data) > HEAD_BYTES
    assert sniff(data[:HEAD_BYTES], "labs.csv").kind == "csv"


@settings(max_examples=300, deadline=None)
@given(data=st.binary(max_size=600), filename=st.text(max_size=30))
def test_sniff_either_accepts_or_explains(data, filename):
    try:
        sniffed = sniff(data, filename)
    except ContentRejected as rejected:
        assert rejected.reason.endswith(".")
    else:
        assert sniffed.kind in ALLOWED_TYPES


def test_human_size():
    assert human_size(0) == "0 bytes"
    assert human_size(1) == "1 byte"
    assert human_size(812) == "812 bytes"
    assert human_size(4300) == "4.2 KB"
    assert human_size(50 * MiB) == "50 MB"
    assert human_size(int(61.2 * MiB)) == "61.2 MB"
    assert human_size(MiB - 1) == "1 MB"
    assert human_size(3 * 1024 * MiB) == "3 GB"


def test_check_size():
    check_size(50 * MiB, 50 * MiB)
    with pytest.raises(ContentRejected, match=r"^the file is 61\.2 MB; the limit is 50 MB\.$"):
        check_size(int(61.2 * MiB), 50 * MiB)
    with pytest.raises(ContentRejected, match=r"52,428,801 bytes; the limit is 52,428,800 bytes \(50 MB\)"):
        check_size(50 * MiB + 1, 50 * MiB)
    with pytest.raises(ContentRejected, match="empty"):
        check_size(0, 50 * MiB)


@pytest.mark.parametrize(
    ("kind", "data", "compress"),
    [
        ("text", samples.text(), True),
        ("csv", samples.csv(), True),
        ("pdf", samples.pdf(), False),
        ("jpeg", samples.jpeg(), False),
        ("png", samples.png(), False),
        ("tiff", samples.tiff(), True),
        ("tiff", samples.tiff(compression="tiff_lzw"), False),
        ("tiff", samples.tiff(compression="tiff_adobe_deflate"), False),
        ("dicom", samples.dicom("CT_small.dcm"), True),  # explicit VR little endian
        ("dicom", samples.dicom("rtdose.dcm"), True),  # implicit VR little endian
        ("dicom", samples.dicom("MR_small_bigendian.dcm"), True),
        ("dicom", samples.dicom_with_tiff_preamble(), True),
        ("dicom", samples.dicom("JPEG2000.dcm"), False),
        ("dicom", samples.dicom("MR_small_RLE.dcm"), False),
        ("dicom", samples.dicom("image_dfl.dcm"), False),  # deflated already
    ],
)
def test_should_compress(kind, data, compress):
    assert should_compress(kind, data[:HEAD_BYTES]) is compress


def test_should_compress_heic_is_false():
    assert should_compress(Kind.HEIC, b"\x00\x00\x00\x18ftypheic" + bytes(100)) is False


@pytest.mark.parametrize("order", ["<", ">"])
def test_tiff_compression_in_both_byte_orders(order):
    assert tiff_compression(samples.tiff_header(order, [(256, 3, 10), (259, 3, 1)])) == 1
    assert tiff_compression(samples.tiff_header(order, [(256, 4, 10), (259, 3, 5)])) == 5
    assert tiff_compression(samples.tiff_header(order, [(259, 4, 32946)])) == 32946
    # No Compression tag means none (TIFF 6.0 default).
    assert tiff_compression(samples.tiff_header(order, [(256, 3, 10)])) == 1
    assert should_compress("tiff", samples.tiff_header(order, [(259, 3, 1)])) is True


def test_tiff_whose_first_ifd_is_past_the_head_is_not_compressed():
    # libtiff often writes the IFD after the image data; unknown counts as compressed.
    header = samples.tiff_header("<", [(259, 3, 1)], ifd_offset=8)
    moved = header[:4] + (HEAD_BYTES + 100).to_bytes(4, "little") + bytes(HEAD_BYTES - 8)
    assert tiff_compression(moved) is None
    assert should_compress("tiff", moved) is False


def test_transfer_syntax_matches_pydicom_for_every_shipped_file():
    checked = 0
    for path in samples.shipped_dicom_files():
        with open(path, "rb") as handle:
            head = handle.read(HEAD_BYTES)
        if head[128:132] != b"DICM":
            continue
        with warnings.catch_warnings():
            # Some shipped files bend the standard on purpose; pydicom says so and reads them anyway.
            warnings.filterwarnings("ignore", category=UserWarning, module=r"pydicom\.")
            meta = dcmread(path, stop_before_pixels=True, force=True).file_meta
        expected = meta.get("TransferSyntaxUID")
        if expected is None:
            continue
        assert dicom_transfer_syntax(head) == str(expected), path
        checked += 1
    assert checked > 50


def test_transfer_syntax_of_a_truncated_meta_is_unknown():
    head = samples.dicom("CT_small.dcm")[:150]
    assert dicom_transfer_syntax(head) is None
    assert should_compress("dicom", head) is False


class ChunkWatcher(io.BytesIO):
    """A source that remembers the largest read asked of it."""

    largest = 0

    def read(self, size=-1):
        self.largest = max(self.largest, size if size is not None and size >= 0 else 1 << 62)
        return super().read(size)


def test_gzip_stream_round_trip_and_hashes():
    rng = random.Random(5)
    lines = [f"{day},glucose,{rng.randint(3, 12)}.{day % 10},mmol/L\n" for day in range(150_000)]
    original = "".join(lines).encode()
    assert len(original) > 3 * STREAM_CHUNK_BYTES
    src, dst = ChunkWatcher(original), io.BytesIO()

    size, packed_size, sha, packed_sha = gzip_stream(src, dst)

    packed = dst.getvalue()
    assert size == len(original)
    assert packed_size == len(packed) < len(original) // 3
    assert sha == hashlib.sha256(original).hexdigest()
    assert packed_sha == hashlib.sha256(packed).hexdigest()
    assert src.largest <= STREAM_CHUNK_BYTES
    assert gzip.decompress(packed) == original
    with gunzip_stream(io.BytesIO(packed)) as reader:
        assert reader.read() == original
    assert worth_keeping(size, packed_size)


def test_gzip_stream_is_reproducible_and_names_nothing():
    data = samples.csv() * 100
    first, second = io.BytesIO(), io.BytesIO()
    gzip_stream(io.BytesIO(data), first)
    gzip_stream(io.BytesIO(data), second)
    assert first.getvalue() == second.getvalue()
    flags = first.getvalue()[3]
    assert flags & 0x08 == 0  # no FNAME field


def test_gunzip_stream_leaves_the_source_open():
    packed = io.BytesIO(gzip.compress(b"abc" * 1000))
    reader = gunzip_stream(packed)
    assert reader.read(3) == b"abc"
    reader.close()
    assert not packed.closed


def test_gzip_of_a_jpeg_is_not_worth_keeping():
    data = samples.photo()
    size, packed_size, _, _ = gzip_stream(io.BytesIO(data), io.BytesIO())
    assert not worth_keeping(size, packed_size)


def test_hashing_copy():
    data = random.Random(3).randbytes(2 * STREAM_CHUNK_BYTES + 17)
    src, dst = ChunkWatcher(data), io.BytesIO()
    assert hashing_copy(src, dst) == (len(data), hashlib.sha256(data).hexdigest())
    assert dst.getvalue() == data
    assert src.largest <= STREAM_CHUNK_BYTES
    assert hashing_copy(io.BytesIO(), io.BytesIO()) == (0, hashlib.sha256().hexdigest())


def test_worth_keeping():
    assert worth_keeping(1000, 899)
    assert not worth_keeping(1000, 900)
    assert not worth_keeping(1000, 1020)
    assert not worth_keeping(0, 0)
