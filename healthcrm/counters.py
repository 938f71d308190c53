"""Per-clinic counters (the next MRN number, …), taken with one guarded UPDATE … RETURNING, so two requests
never get the same number; and the dialect-neutral "insert this row unless it exists" they start from."""

from __future__ import annotations

from sqlalchemy import ForeignKey, Integer, String, update
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Mapped, mapped_column

from .extensions import db

MRN = "mrn"


class ClinicCounter(db.Model):
    """The last number handed out for one of a clinic's sequences."""

    __tablename__ = "clinic_counters"

    tenant_id: Mapped[int] = mapped_column(ForeignKey("tenants.id"), primary_key=True)
    name: Mapped[str] = mapped_column(String(40), primary_key=True)
    value: Mapped[int] = mapped_column(Integer, default=0)


def insert_unless_exists(model: type, values: dict, key: list[str]) -> bool:
    """INSERT … ON CONFLICT DO NOTHING on PostgreSQL and SQLite: of two racing inserts of one key, one wins
    and the other changes nothing and raises nothing (on PostgreSQL it waits for the winner's commit).
    Returns whether this call inserted the row."""
    dialect = db.session.get_bind().dialect.name
    insert = postgresql_insert if dialect == "postgresql" else sqlite_insert
    # RETURNING says whether a row went in (psycopg reports no rowcount for this INSERT: -1).
    table = model.__table__
    statement = (
        insert(table).values(**values).on_conflict_do_nothing(index_elements=key).returning(table.c[key[0]])
    )
    return db.session.execute(statement).first() is not None


def take_next(tenant_id: int, name: str, *, start_after: int = 0) -> int:
    """The clinic's next number of `name` (1, 2, …), reserved for this transaction.

    The UPDATE locks the counter row until commit (a row lock on PostgreSQL, the write lock on SQLite), so a
    concurrent caller waits and then gets the number after. A rolled-back transaction gives its number back.
    `start_after` seeds a counter that does not exist yet (e.g. from the rows made before it did).
    """
    bump = (
        update(ClinicCounter)
        .where(ClinicCounter.tenant_id == tenant_id, ClinicCounter.name == name)
        .values(value=ClinicCounter.value + 1)
        .returning(ClinicCounter.value)
    )
    value = db.session.scalar(bump)
    if value is None:
        insert_unless_exists(
            ClinicCounter, {"tenant_id": tenant_id, "name": name, "value": start_after}, ["tenant_id", "name"]
        )
        value = db.session.scalar(bump)
    return value
