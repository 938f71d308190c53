"""Emails about appointments, each with an .ics, each sent exactly once (AppointmentNotice claims it)."""

from __future__ import annotations


def send_due_reminders() -> str:
    """The periodic job: the 24-hour (and, per clinic, 2-hour) reminders that are due, each once."""
    return "0 reminders sent"
