"""A record's vitals in its clinic's units, for pages and exports (the conversion itself is units.py)."""

from __future__ import annotations

from ..accounts.models import Tenant
from ..extensions import db
from .units import METRIC, VITALS, vital_text


def clinic_unit_system(tenant_id: int) -> str:
    """The clinic's unit system (its Tenant row is usually in the session already)."""
    tenant = db.session.get(Tenant, tenant_id)
    return tenant.unit_system if tenant is not None else METRIC


def record_vital(record, kind: str) -> str:
    """A record's weight, height or temperature in its clinic's units with the unit ("154.3 lb"), or ""."""
    return vital_text(kind, getattr(record, VITALS[kind].field), clinic_unit_system(record.tenant_id))
