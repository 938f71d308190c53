"""Tenant-scoped queries. Every read of clinic data goes through these, so an id from another clinic
is simply not found (404), never forbidden and never shown."""

from __future__ import annotations

from typing import TypeVar

from flask import abort
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
    return db.session.scalar(scoped(model, tenant_id).where(model.id == object_id))  # type: ignore[attr-defined]


def get_scoped_or_404(model: type[M], object_id: int | str | None, tenant_id: int) -> M:
    found = get_scoped(model, object_id, tenant_id)
    if found is None:
        abort(404)
    return found


# The test-mode check that every SELECT of clinic data has a tenant criterion (registered on import).
from . import tenant_scope as _tenant_scope  # noqa: E402, F401
