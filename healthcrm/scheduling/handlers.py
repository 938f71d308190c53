"""What appointment events set off: the staff task, the patient's notification and email (with an .ics),
the waitlist's next offer, care-stage rules. Imported at app start (MODULES_THAT_REGISTER)."""

from __future__ import annotations
