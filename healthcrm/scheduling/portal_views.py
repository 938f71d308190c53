"""The patient's appointments in the portal: book, reschedule, cancel, the waitlist, the history."""

from __future__ import annotations

from flask import Blueprint

bp = Blueprint("portal_appointments", __name__, url_prefix="/portal/appointments")
