"""The clinic's details as patients see them (phone, address, opening hours), edited on the portal settings
page. Hours are one interval per weekday in the clinic's zone ("08:00"–"17:00"; both empty: closed)."""

from __future__ import annotations

from datetime import time

from ..accounts.models import Tenant
from ..audit.services import Actor, record_event
from ..errors import DomainError
from ..extensions import db
from ..portal.clinic import WEEKDAYS, opening_hours

PHONE_MAX = 40
ADDRESS_MAX = 300


class ClinicDetailsError(DomainError):
    pass


def hours_form_values(tenant: Tenant) -> dict[int, tuple[str, str]]:
    """{weekday: (opens, closes)} as the form shows them (the first interval of each day)."""
    week = opening_hours(tenant)
    values = {}
    for day in range(7):
        intervals = week.get(day, [])
        values[day] = (f"{intervals[0][0]:%H:%M}", f"{intervals[-1][1]:%H:%M}") if intervals else ("", "")
    return values


def _parse_time(raw: str, field: str) -> time:
    try:
        return time.fromisoformat(raw.strip())
    except ValueError:
        raise ClinicDetailsError("Enter a time as HH:MM, e.g. 08:30.", field) from None


def parse_hours(values: dict[str, str]) -> dict[str, list[list[str]]]:
    """The form's `opens_0`…`closes_6` as Tenant.hours; a bad day changes nothing."""
    hours: dict[str, list[list[str]]] = {}
    for day in range(7):
        opens_raw = (values.get(f"opens_{day}") or "").strip()
        closes_raw = (values.get(f"closes_{day}") or "").strip()
        if not opens_raw and not closes_raw:
            continue
        if not opens_raw or not closes_raw:
            raise ClinicDetailsError(
                f"Give both times for {WEEKDAYS[day]}, or neither if the clinic is closed.", f"opens_{day}"
            )
        opens = _parse_time(opens_raw, f"opens_{day}")
        closes = _parse_time(closes_raw, f"closes_{day}")
        if closes <= opens:
            raise ClinicDetailsError(
                f"On {WEEKDAYS[day]} the clinic must close after it opens.", f"closes_{day}"
            )
        hours[str(day)] = [[f"{opens:%H:%M}", f"{closes:%H:%M}"]]
    return hours


def save_clinic_details(actor: Actor, values: dict[str, str]) -> Tenant:
    """Phone, address and hours of the actor's clinic (audited with the fields that changed)."""
    phone = (values.get("phone") or "").strip()
    address = (values.get("address") or "").strip()
    if len(phone) > PHONE_MAX:
        raise ClinicDetailsError(f"Keep the phone number under {PHONE_MAX} characters.", "phone")
    if phone and not all(ch.isdigit() or ch in " +-().ext" for ch in phone):
        raise ClinicDetailsError("Use digits, spaces and + - ( ) in the phone number.", "phone")
    if len(address) > ADDRESS_MAX:
        raise ClinicDetailsError(f"Keep the address under {ADDRESS_MAX} characters.", "address")
    hours = parse_hours(values)
    tenant = db.session.get(Tenant, actor.tenant_id)
    changed = []
    for name, value in (("phone", phone or None), ("address", address or None), ("hours", hours)):
        if getattr(tenant, name) != value:
            setattr(tenant, name, value)
            changed.append(name)
    record_event(
        actor,
        "clinic.portal_details_changed",
        resource_type="tenant",
        resource_id=tenant.id,
        changed_fields=changed,
    )
    db.session.commit()
    return tenant
