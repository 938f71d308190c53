"""Tenant-scoped queries. Every read of clinic data goes through these, so an id from another clinic
is simply not found (404), never forbidden and never shown."""

from __future__ import annotations

from typing import TypeVar

from flask import abort, g, has_request_context
from sqlalchemy import ForeignKey, Select, select
from sqlalchemy.orm import Mapped, declared_attr, mapped_column

from .extensions import db

M = TypeVar("M")


class TenantScoped:
    """Mixin for every table that holds clinic data."""

    @declared_attr
    def tenant_id(cls) -> Mapped[int]:
        return mapped_column(ForeignKey("tenants.id"), index=True)


def scoped(model: type[M], tenant_id: int) -> Select:
    """A SELECT of `model` limited to one clinic."""
    return select(model).where(model.tenant_id == tenant_id)  # type: ignore[attr-defined]


def get_scoped(model: type[M], object_id: int | str | None, tenant_id: int) -> M | None:
    if object_id is None:
        return None
    found = db.session.scalar(scoped(model, tenant_id).where(model.id == object_id))  # type: ignore[attr-defined]
    if found is None and has_request_context():
        _note_other_clinic(model, object_id, tenant_id)
    return found


def note_other_clinic(model, object_id: int | str | None, tenant_id: int) -> None:
    """For a lookup that missed through a query of its own (not `get_scoped`): note, as `get_scoped` does,
    when the id is another clinic's, so the 404 is audited as a denied attempt."""
    if object_id is not None and has_request_context():
        _note_other_clinic(model, object_id, tenant_id)


def _note_other_clinic(model, object_id: int | str, tenant_id: int) -> None:
    """Remember, for the 404 page's audit event (web.py), that the id asked for is another clinic's:
    the answer stays a plain 404, but the attempt is on record as DENIED."""
    # Across clinics on purpose (tenant_scope's ALL_TENANTS option): only whether the id exists elsewhere.
    elsewhere = db.session.scalar(
        select(model.id)
        .where(model.id == object_id, model.tenant_id != tenant_id)
        .limit(1)
        .execution_options(all_tenants=True)
    )
    if elsewhere is not None:
        g.other_clinic_resource = (model.__tablename__, object_id)


def get_scoped_or_404(model: type[M], object_id: int | str | None, tenant_id: int) -> M:
    found = get_scoped(model, object_id, tenant_id)
    if found is None:
        abort(404)
    return found


# The test-mode check that every SELECT of clinic data has a tenant criterion (registered on import).
from . import tenant_scope as _tenant_scope  # noqa: E402, F401
