"""The answer that carries file bytes (or a rendering of them), for the staff's file routes and the
provider's share routes alike: never an active type, sniffing off, its own sandboxed policy, never cached."""

from __future__ import annotations

from flask import Response

# Whatever a stored file claims to be, these are never served: a browser would run them as part of the app.
ACTIVE_CONTENT_TYPES = frozenset(
    {"text/html", "application/xhtml+xml", "image/svg+xml", "text/xml", "application/xml"}
)
# File bytes run nothing and fetch nothing; only the app's own pages may frame them (the PDF preview).
FILE_CSP = (
    "sandbox; default-src 'none'; img-src 'self' data:; style-src 'unsafe-inline'; frame-ancestors 'self'"
)


def file_response(
    chunks,
    content_type: str,
    disposition: str,
    *,
    size: int | None = None,
    csp: str = FILE_CSP,
    frame_options: str = "SAMEORIGIN",
) -> Response:
    """A response carrying file bytes (or a rendering of them): never an active type, sniffing off, its
    own sandboxed policy, never cached. Shared with the provider's side of share links."""
    if content_type.split(";")[0].strip().lower() in ACTIVE_CONTENT_TYPES:
        content_type = "application/octet-stream"
    # The chunks need no request context: the storage object is already chosen.
    response = Response(chunks, content_type=content_type)
    if size is not None:
        response.content_length = size
    # web.py keeps a policy a view has set: file bytes get their own, sandboxed one.
    response.headers.update(
        {
            "Content-Disposition": disposition,
            "Content-Security-Policy": csp,
            "X-Content-Type-Options": "nosniff",
            "X-Frame-Options": frame_options,
            "Cache-Control": "no-store",
        }
    )
    return response
