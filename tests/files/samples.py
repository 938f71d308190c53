"""Real sample attachments built in memory: each function returns the bytes of one small, valid file."""

from __future__ import annotations

import io
import struct
import zipfile
import zlib
from pathlib import Path

import pydicom.data
from PIL import Image
from pydicom.data import get_testdata_file

EXIF_ORIENTATION = 0x0112
# EXIF orientation 6: the camera was turned a quarter clockwise; viewers rotate the picture 90° clockwise.
ROTATED_CLOCKWISE = 6


def pdf() -> bytes:
    """A one-page PDF with a correct cross-reference table."""
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 200 200] /Contents 4 0 R >>",
        b"<< /Length 21 >>\nstream\n0 0 1 rg 10 10 50 50 re f\nendstream",
    ]
    out = bytearray(b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n")
    offsets = []
    for number, body in enumerate(objects, start=1):
        offsets.append(len(out))
        out += b"%d 0 obj\n%s\nendobj\n" % (number, body)
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    out += b"".join(b"%010d 00000 n \n" % offset for offset in offsets)
    out += b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (len(objects) + 1, xref)
    return bytes(out)


def halves(size: tuple[int, int] = (80, 40), mode: str = "RGB") -> Image.Image:
    """An image whose left half is red and right half blue, so a rotation shows."""
    image = Image.new(mode, size, "blue")
    image.paste("red", (0, 0, size[0] // 2, size[1]))
    return image


def jpeg(size: tuple[int, int] = (80, 40), orientation: int | None = None) -> bytes:
    image = halves(size)
    out = io.BytesIO()
    if orientation is None:
        image.save(out, format="JPEG", quality=90)
    else:
        exif = Image.Exif()
        exif[EXIF_ORIENTATION] = orientation
        image.save(out, format="JPEG", quality=90, exif=exif)
    return out.getvalue()


def photo(size: tuple[int, int] = (400, 300)) -> bytes:
    """A JPEG of noise: like a real photo, gzip cannot shrink it."""
    channels = [Image.effect_noise(size, sigma) for sigma in (40, 60, 80)]
    out = io.BytesIO()
    Image.merge("RGB", channels).save(out, format="JPEG", quality=90)
    return out.getvalue()


def png(size: tuple[int, int] = (64, 48), mode: str = "RGBA") -> bytes:
    image = halves(size, "RGB").convert(mode)
    out = io.BytesIO()
    image.save(out, format="PNG")
    return out.getvalue()


def tiff(size: tuple[int, int] = (64, 48), compression: str | None = None, pages: int = 1) -> bytes:
    """A TIFF, uncompressed unless told ("tiff_lzw", "tiff_adobe_deflate"); pages after the first are blue."""
    first = halves(size)
    rest = [Image.new("RGB", size, "blue") for _ in range(pages - 1)]
    out = io.BytesIO()
    first.save(out, format="TIFF", compression=compression, save_all=pages > 1, append_images=rest)
    return out.getvalue()


def tiff_16_bit(size: tuple[int, int] = (64, 48)) -> bytes:
    """A 16-bit grayscale TIFF (as microscopes and some scanners write): a left-to-right ramp."""
    image = Image.new("I;16", size)
    image.putdata([x * 1000 for _ in range(size[1]) for x in range(size[0])])
    out = io.BytesIO()
    image.save(out, format="TIFF")
    return out.getvalue()


def tiff_header(order: str, entries: list[tuple[int, int, int]], ifd_offset: int = 8) -> bytes:
    """A TIFF header and first IFD built by hand: entries are (tag, type, value) with a count of one."""
    mark = b"II*\x00" if order == "<" else b"MM\x00*"
    out = bytearray(mark + struct.pack(f"{order}I", ifd_offset))
    out += bytes(ifd_offset - len(out))
    out += struct.pack(f"{order}H", len(entries))
    for tag, value_type, value in entries:
        packed = (
            struct.pack(f"{order}H", value) + b"\x00\x00"
            if value_type == 3
            else struct.pack(f"{order}I", value)
        )
        out += struct.pack(f"{order}HHI", tag, value_type, 1) + packed
    out += struct.pack(f"{order}I", 0)
    return bytes(out)


def heic(size: tuple[int, int] = (80, 40)) -> bytes:
    """A HEIC photo (needs pillow-heif, which registers the encoder)."""
    import pillow_heif

    pillow_heif.register_heif_opener()
    out = io.BytesIO()
    halves(size).save(out, format="HEIF", quality=90)
    return out.getvalue()


def dicom_path(name: str) -> Path:
    """A DICOM file shipped with pydicom (never downloaded)."""
    path = get_testdata_file(name, download=False)
    if path is None:
        raise LookupError(f"pydicom does not ship {name}")
    return Path(path)


def shipped_dicom_files() -> list[Path]:
    """Every .dcm file inside pydicom's wheel (get_testdata_files would also try to download more)."""
    return sorted((Path(pydicom.data.__file__).parent / "test_files").glob("*.dcm"))


def dicom(name: str = "CT_small.dcm") -> bytes:
    return dicom_path(name).read_bytes()


def dicom_with_tiff_preamble(name: str = "CT_small.dcm") -> bytes:
    """A dual-personality file: a TIFF byte-order mark in the free 128-byte preamble before DICM."""
    data = bytearray(dicom(name))
    data[0:8] = b"II*\x00\x08\x00\x00\x00"
    return bytes(data)


def text() -> bytes:
    return "Patient reports mild headache since Monday.\nNo fever. Température normale.\n".encode()


def csv() -> bytes:
    return b"date,test,value,unit\n2024-01-05,HbA1c,6.1,%\n2024-03-02,LDL,2.9,mmol/L\n"


def html() -> bytes:
    return b"\n  <!DOCTYPE html>\n<html><body><script>alert(1)</script></body></html>\n"


def svg() -> bytes:
    return (
        b'<?xml version="1.0" encoding="UTF-8"?>\n'
        b'<svg xmlns="http://www.w3.org/2000/svg" onload="alert(1)"><circle r="4"/></svg>\n'
    )


def exe() -> bytes:
    """The start of a Windows program: the MZ header and a PE signature."""
    header = bytearray(256)
    header[0:2] = b"MZ"
    header[0x3C:0x40] = struct.pack("<I", 0x80)
    header[0x80:0x84] = b"PE\x00\x00"
    return bytes(header)


def zip_archive() -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as archive:
        archive.writestr("notes.txt", "hello")
    return out.getvalue()


def png_bomb(width: int = 100_000, height: int = 100_000) -> bytes:
    """A PNG header declaring huge dimensions (and a token of data): decoding it would take gigabytes."""

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(b"\x00" * 1024))
        + chunk(b"IEND", b"")
    )
