"""Reading what the browser shows: flashes, form errors, the session cookie."""

from __future__ import annotations

import re

FLASH = re.compile(r'<div class="alert alert-(\w+)">([^<]*)</div>')
FORM_ERROR = re.compile(r'<div class="alert alert-error" role="alert">([^<]*)</div>')


def flashes(page: str) -> list[str]:
    return [text for _category, text in FLASH.findall(page)]


def form_error(page: str) -> str | None:
    match = FORM_ERROR.search(page)
    return match.group(1) if match else None


def field_error(page: str, field_id: str) -> str | None:
    """The error text shown under a form field, if the input points at it with aria-describedby."""
    match = re.search(rf'<p class="error" id="{field_id}-error">([^<]*)</p>', page)
    if match is None:
        return None
    input_tag = re.search(rf'<input[^>]*id="{field_id}"[^>]*>', page)
    assert input_tag and f"{field_id}-error" in input_tag.group(0), "the error is not tied to its input"
    assert 'aria-invalid="true"' in input_tag.group(0)
    return match.group(1)


def session_cookie(client) -> str | None:
    cookie = client.get_cookie("hc_session")
    return cookie.value if cookie else None


def signed_in(client) -> bool:
    """Whether the browser's session still opens a page that needs sign-in."""
    response = client.get("/account/security")
    if response.status_code == 200:
        return True
    assert response.status_code == 302 and response.headers["Location"].startswith("/login"), response.status
    return False


def duplicate_ids(page: str) -> set[str]:
    """Element ids used more than once; a label `for` one of them may name the wrong input."""
    ids = re.findall(r'\sid="([^"]+)"', page)
    return {value for value in ids if ids.count(value) > 1}
