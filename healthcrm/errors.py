"""The errors services raise, and the answer each one gets (one app-wide handler in healthcrm/web.py).

- `DomainError`: input the person can fix. `message` is for them; `field` names the form field it belongs
  to. Views catch it and show it in the form (422); one a view does not catch still gets a 422 page with
  the message (under the error's `title` when it has one), never a 500. Each area keeps its own subclass
  (`RecordError`, `ShareError`, …) so a view catches only its own area's errors.
- `Conflict`: the request clashes with the current state (a draft finalized meanwhile): 409.
- `NotAllowed`: the actor's role lacks the permission (healthcrm/permissions.py): 403. A `PermissionError`,
  so code that caught the built-in one keeps working.
- `NotFound`: not there, or another clinic's (which must look the same): 404. A `LookupError`, which the
  services raised for this before and views still catch.

This module imports nothing of Flask: services, jobs and CLI commands raise these without a request.
"""

from __future__ import annotations

UNPROCESSABLE = 422
CONFLICT = 409
FORBIDDEN = 403
NOT_FOUND = 404


class DomainError(Exception):
    """Input the person can fix; `message` is for them and `field` names the form field."""

    status = UNPROCESSABLE
    # The error page's heading; None keeps the one of the status (healthcrm/web.py ERROR_TEXT).
    title: str | None = None

    def __init__(self, message: str, field: str | None = None):
        super().__init__(message)
        self.message = message
        self.field = field


class Conflict(DomainError):
    """What was asked clashes with how things stand now (someone else changed it first)."""

    status = CONFLICT


class NotAllowed(PermissionError):
    """The actor's role does not hold the permission this needs."""

    status = FORBIDDEN

    def __init__(self, permission: str = "", role: str | None = None):
        super().__init__(f"{role or 'anonymous'} may not {permission}" if permission else "not allowed")
        self.permission = permission
        self.role = role


class NotFound(LookupError):
    """There is no such thing for this actor: missing, or another clinic's (the answer is the same)."""

    status = NOT_FOUND
