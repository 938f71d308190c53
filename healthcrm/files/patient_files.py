"""A patient's own documents: files kept on the patient (not on a visit record), uploaded by the patient
from the portal (also as a message's attachment) or by staff, through the same checks, scan, versions and
quota as record attachments.

THE INTERFACE IS FIXED (the messages helper calls it); the documents helper implements it.
"""

from __future__ import annotations

from typing import IO

from ..audit.services import Actor

PORTAL = "portal"  # the patient's documents page
MESSAGE = "message"  # attached to a message (the messages area links it)
STAFF = "staff"  # staff, on the patient page


def store_patient_file(actor: Actor, patient_id: int, filename: str, stream: IO[bytes], *, source: str):
    """Check, scan and store one file as a new patient document (an `Attachment` with no record) and return
    it. A patient may only store into their own file (`actor` is theirs; `patient_id` from the session).
    Raises the files area's domain errors (too large, a type not accepted, over quota) with a clear message,
    and changes nothing then. Audited in the same transaction."""
    raise NotImplementedError("issue 11: the documents helper implements this")
