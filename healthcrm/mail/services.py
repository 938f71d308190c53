"""Outgoing email. Production sends through SMTP; the embedded default writes `.eml` files to an outbox
folder that admins can read in the app. Messages are sent from jobs, never from a request."""

from __future__ import annotations

import copy
import os
import re
import smtplib
import ssl
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from email.message import EmailMessage
from email.parser import BytesParser
from email.policy import default as default_policy
from email.utils import format_datetime, make_msgid, parsedate_to_datetime
from pathlib import Path

from flask import current_app, render_template

from ..clock import utcnow

TENANT_HEADER = "X-HealthCRM-Tenant"
# Each message's subject, fixed per template. A subject shows on lock screens, in notifications and in
# shared inboxes before anyone opens the message: no names, no clinic, nothing about anyone's health.
SUBJECTS = {
    "password_reset": "Reset your HealthCRM password",
    "patient_invitation": "Your HealthCRM account",
    "staff_invitation": "Your HealthCRM account",
    "registration": "Your HealthCRM account",
    "file_quarantined": "A file you uploaded was quarantined",
    "share_link": "A secure link was shared with you",
    "share_code": "Your one-time code",
    "share_notice": "News about a link you shared",
    "audit_alert": "Audit log check failed: action needed",
    "clinic_export_ready": "Your data export is ready",
    "clinic_export_failed": "A scheduled data export failed",
    "portal_notice": "You have a new message",
    "appointment_confirmation": "Your appointment is booked",
    "appointment_update": "Your appointment has moved",
    "appointment_cancellation": "Your appointment is cancelled",
    "appointment_reminder": "A reminder of your appointment",
    "waitlist_offer": "An earlier appointment time is free",
    "file_restore_ready": "A file you asked for is ready",
    "storage_alert": "Storage alert: a limit you set was crossed",
}
_OUTBOX_NAME = re.compile(r"[0-9T]{15}-[0-9a-f]{32}\.eml")


def compose(to: str, template: str, *, tenant_id: int | None, **context) -> EmailMessage:
    """Build a message from `templates/mail/<template>.txt` and `.html`, with the template's subject
    (`SUBJECTS`)."""
    message = EmailMessage()
    message["From"] = current_app.config["MAIL_FROM"]
    message["To"] = to
    message["Subject"] = SUBJECTS[template]
    message["Date"] = format_datetime(datetime.now(UTC))
    message["Message-ID"] = make_msgid(domain="healthcrm.local")
    if tenant_id is not None:
        message[TENANT_HEADER] = str(tenant_id)
    message.set_content(render_template(f"mail/{template}.txt", **context))
    message.add_alternative(render_template(f"mail/{template}.html", **context), subtype="html")
    return message


def deliver(message: EmailMessage) -> str:
    """Send a message with the configured backend; return where it went (outbox file name or SMTP)."""
    if current_app.config["MAIL_BACKEND"] == "smtp":
        _send_smtp(message)
        return "smtp"
    return _write_outbox(message)


def _send_smtp(message: EmailMessage) -> None:
    config = current_app.config
    # The tenant header files a message in the outbox; it is no business of the recipient's.
    message = copy.deepcopy(message)
    del message[TENANT_HEADER]
    host, port = config["SMTP_HOST"], config["SMTP_PORT"]
    if config["SMTP_SSL"]:
        client: smtplib.SMTP = smtplib.SMTP_SSL(host, port, context=ssl.create_default_context(), timeout=30)
    else:
        client = smtplib.SMTP(host, port, timeout=30)
    with client:
        if config["SMTP_STARTTLS"] and not config["SMTP_SSL"]:
            client.starttls(context=ssl.create_default_context())
        if config["SMTP_USERNAME"]:
            client.login(config["SMTP_USERNAME"], config["SMTP_PASSWORD"])
        client.send_message(message)


def _outbox() -> Path:
    path = Path(current_app.config["MAIL_OUTBOX_DIR"])
    path.mkdir(parents=True, exist_ok=True)
    return path


def _write_outbox(message: EmailMessage) -> str:
    name = f"{utcnow().strftime('%Y%m%dT%H%M%S')}-{uuid.uuid4().hex}.eml"
    outbox = _outbox()
    partial = outbox / f".{name}.partial"
    # Messages hold sign-in links: readable by the app's user only, and never seen half-written.
    fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(bytes(message))
    partial.replace(outbox / name)
    return name


@dataclass(frozen=True)
class OutboxEntry:
    name: str
    to: str
    subject: str
    sent_at: datetime | None  # naive UTC, like every time the templates show through |localtime


def _read(name: str) -> EmailMessage | None:
    if not _OUTBOX_NAME.fullmatch(name):
        return None
    path = _outbox() / name
    if not path.is_file():
        return None
    with path.open("rb") as handle:
        return BytesParser(policy=default_policy).parse(handle)  # type: ignore[return-value]


def outbox_entries(tenant_id: int) -> list[OutboxEntry]:
    """The clinic's messages in the outbox folder, newest first."""
    entries = []
    for path in sorted(_outbox().glob("*.eml"), reverse=True):
        message = _read(path.name)
        if message is None or message.get(TENANT_HEADER) != str(tenant_id):
            continue
        entries.append(_entry(path.name, message))
    return entries


def outbox_message(tenant_id: int, name: str) -> tuple[OutboxEntry, str] | None:
    """One of the clinic's outbox messages with its plain-text body, or None."""
    message = _read(name)
    if message is None or message.get(TENANT_HEADER) != str(tenant_id):
        return None
    body = message.get_body(preferencelist=("plain",))
    text = body.get_content() if body is not None else ""
    return _entry(name, message), text


def _entry(name: str, message: EmailMessage) -> OutboxEntry:
    try:
        sent = parsedate_to_datetime(str(message["Date"])).astimezone(UTC).replace(tzinfo=None)
    except (TypeError, ValueError):
        sent = None
    return OutboxEntry(name, str(message["To"]), str(message["Subject"]), sent)
