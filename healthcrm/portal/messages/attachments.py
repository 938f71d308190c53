"""The web side of a message's files: the uploads of a form, and the answer that carries a file."""

from __future__ import annotations

from collections.abc import Callable

from flask import Response, abort, redirect
from werkzeug.datastructures import MultiDict

from ...errors import NotFound
from ...files.responses import file_response
from ...files.services import ChecksumMismatch
from ...files.storage.keys import attachment_disposition
from . import services


def uploads_from(files: MultiDict) -> list[services.Upload]:
    """The form's chosen files (an empty file input sends one nameless part: not a file)."""
    return [services.Upload(f.filename, f.stream) for f in files.getlist("files") if f and f.filename]


def attachment_response(open_delivery: Callable) -> Response:
    try:
        delivery = open_delivery()
    except NotFound:
        abort(404)
    except ChecksumMismatch:
        abort(409)
    if delivery.redirect_url:
        return redirect(delivery.redirect_url, code=302)
    disposition = attachment_disposition(delivery.filename)
    return file_response(delivery.chunks, delivery.content_type, disposition, size=delivery.size)
