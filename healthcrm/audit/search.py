"""Filtering the audit log: one `AuditFilter` parsed from request args, one `apply_filters` for any model
with the audit_log columns (the live log, or an archive of it)."""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from datetime import date
from urllib.parse import urlencode

from sqlalchemy import Select

from ..accounts.roles import ALL_ROLES
from ..clock import clinic_day_end, clinic_day_start
from .services import DENIED, FAILURE, SUCCESS

OUTCOMES = (SUCCESS, DENIED, FAILURE)
MAX_TEXT = 60
MAX_ID = 2**31 - 1


@dataclass(frozen=True)
class AuditFilter:
    """What the admin asked for; `errors` says, in words, which values were not understood (and ignored)."""

    date_from: date | None = None
    date_to: date | None = None
    user: int | None = None
    role: str = ""
    action: str = ""
    resource_type: str = ""
    patient: int | None = None
    outcome: str = ""
    share: int | None = None
    ip: str = ""
    before: int | None = None
    errors: tuple[str, ...] = field(default=())

    def args(self, **overrides) -> dict[str, str]:
        """The filter as query arguments (no errors, no empty values), for links and the export."""
        out = {}
        for f in fields(self):
            if f.name == "errors":
                continue
            value = overrides.get(f.name, getattr(self, f.name))
            if value not in (None, ""):
                out[f.name] = value.isoformat() if isinstance(value, date) else str(value)
        return out

    def query_string(self, **overrides) -> str:
        return urlencode(self.args(**overrides))

    @property
    def active(self) -> bool:
        return bool(self.args(before=None))


def _text(args: Mapping[str, str], name: str) -> str:
    return (args.get(name) or "").strip()


def parse_filter(args: Mapping[str, str]) -> AuditFilter:
    """Read the filter from request args (or a parsed query string); bad values are dropped with a message."""
    errors: list[str] = []

    def number(name: str, label: str) -> int | None:
        raw = _text(args, name)
        if not raw:
            return None
        if raw.isdigit() and len(raw) <= 10 and 0 < int(raw) <= MAX_ID:
            return int(raw)
        errors.append(f"{label} must be a whole number (an id); “{raw[:20]}” was ignored.")
        return None

    def day(name: str, label: str) -> date | None:
        raw = _text(args, name)
        if not raw:
            return None
        try:
            if len(raw) != 10:
                raise ValueError
            return date.fromisoformat(raw)
        except ValueError:
            errors.append(f"{label} must be a date like 2026-12-31; “{raw[:20]}” was ignored.")
            return None

    def text(name: str, label: str) -> str:
        raw = _text(args, name)
        if len(raw) > MAX_TEXT:
            errors.append(f"{label} is longer than {MAX_TEXT} characters and was ignored.")
            return ""
        return raw

    date_from, date_to = day("date_from", "From"), day("date_to", "To")
    if date_from and date_to and date_from > date_to:
        errors.append("“From” is after “To”: the dates were swapped.")
        date_from, date_to = date_to, date_from
    role = text("role", "Role")
    if role and role not in ALL_ROLES and role != "system":
        errors.append(f"There is no role “{role[:20]}”; it was ignored.")
        role = ""
    outcome = text("outcome", "Outcome")
    if outcome and outcome not in OUTCOMES:
        errors.append(f"Outcome must be one of {', '.join(OUTCOMES)}; “{outcome[:20]}” was ignored.")
        outcome = ""
    ip = text("ip", "IP")
    if ip:
        try:
            ip = str(ipaddress.ip_address(ip))
        except ValueError:
            errors.append(f"“{ip[:40]}” is not an IP address; it was ignored.")
            ip = ""
    return AuditFilter(
        date_from=date_from,
        date_to=date_to,
        user=number("user", "User"),
        role=role,
        action=text("action", "Action"),
        resource_type=text("resource_type", "Resource type"),
        patient=number("patient", "Patient"),
        outcome=outcome,
        share=number("share", "Share link"),
        ip=ip,
        before=number("before", "Page"),
        errors=tuple(errors),
    )


def apply_filters(query: Select, model, filters: AuditFilter, *, zone: str | None = None) -> Select:
    """Add the filter's conditions (not the tenant's, not the paging) to a SELECT over `model`."""
    if filters.date_from:
        query = query.where(model.occurred_at >= clinic_day_start(filters.date_from, zone))
    if filters.date_to:
        query = query.where(model.occurred_at < clinic_day_end(filters.date_to, zone))
    if filters.user is not None:
        query = query.where(model.actor_user_id == filters.user)
    if filters.role:
        query = query.where(model.actor_role == filters.role)
    if filters.action:
        query = query.where(model.action.startswith(filters.action, autoescape=True))
    if filters.resource_type:
        query = query.where(model.resource_type == filters.resource_type)
    if filters.patient is not None:
        query = query.where(model.patient_id == filters.patient)
    if filters.outcome:
        query = query.where(model.outcome == filters.outcome)
    if filters.share is not None:
        query = query.where(model.actor_share_link_id == filters.share)
    if filters.ip:
        query = query.where(model.ip == filters.ip)
    return query
