"""Exports of a share: a PDF to read and print, and its lab results as CSV.

Both are built from a `SharedContent` only, so nothing outside the share's scope can reach them, and every
PDF page carries the share's watermark (upright in both side margins, where it hides nothing, and in the
footer). Everything the clinic or the patient typed goes through `_text`, which escapes it for reportlab's
Paragraph markup.
"""

from .document import build_pdf
from .spreadsheet import labs_csv

__all__ = ["build_pdf", "labs_csv"]
