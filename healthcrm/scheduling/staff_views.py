"""The staff side of scheduling: appointment types, availability, closures, the calendar, booking."""

from __future__ import annotations

from flask import Blueprint

bp = Blueprint("schedule", __name__, url_prefix="/schedule")
