"""The tenant-scope check: in test mode (`TENANT_SCOPE_CHECK`, which the test fixtures turn on), any SELECT
that the app's code sends for a tenant-scoped table (a model with the `TenantScoped` mixin) without a
`tenant_id` criterion for that table fails, so "every query goes through the tenant helpers" is checked,
not a convention.

What counts as scoped, for each tenant-scoped table (or alias of one) in the statement's FROM list:
- a criterion `table.tenant_id = <value>` or `table.tenant_id IN (<values>)` in the WHERE clause or a JOIN's
  ON clause, joined to the rest with AND (a criterion under OR or NOT limits nothing);
- or `table.tenant_id = other.tenant_id` where `other` is scoped (a join on the clinic);
- a subquery in the FROM list is checked on its own.

What is not checked, and why:
- relationship loads (lazy, selectin) and reloads of expired or deferred columns: they follow an object
  already loaded, by a query that was checked itself;
- `session.get(Model, id)` is checked when it reaches the database (then it is a SELECT by primary key
  without a tenant criterion, exactly the leak this catches: an id from the URL read without the clinic).
  A get answered from the session's identity map sends nothing: the object was loaded earlier in the same
  session, by a query that was itself checked;
- queries sent by the tests' own code (only frames in the `healthcrm` package count as the app's);
- raw SQL (`text()`), and UPDATE/DELETE statements (they are not SELECTs).

Cross-clinic reads on purpose opt out where they are written, by name: a statement with
`.execution_options(**ALL_TENANTS)` (or `session.get(..., execution_options=ALL_TENANTS)`), or a block in
`with all_tenants("why"):` (the job runner, periodic sweeps, CLI commands, the demo).
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from pathlib import Path

import sqlalchemy
from flask import current_app, has_app_context
from sqlalchemy import event
from sqlalchemy.orm import ORMExecuteState, Session
from sqlalchemy.sql import operators
from sqlalchemy.sql.elements import BinaryExpression, BooleanClauseList, ColumnClause, Grouping
from sqlalchemy.sql.selectable import CompoundSelect, Join, Select, Subquery

from .extensions import db
from .tenancy import TenantScoped

ALL_TENANTS_OPTION = "all_tenants"
# `.execution_options(**ALL_TENANTS)`: this statement reads across clinics on purpose.
ALL_TENANTS = {ALL_TENANTS_OPTION: True}
# What the check found, for the test fixtures to fail on (the app may catch the exception it raises).
TENANT_SCOPE_VIOLATIONS: list[str] = []

_cross_tenant_reason: ContextVar[str | None] = ContextVar("cross_tenant_reason", default=None)
_PACKAGE = str(Path(__file__).resolve().parent) + "/"
_SKIPPED_FRAMES = (__file__, str(Path(sqlalchemy.__file__).parent) + "/")
_tenant_tables: set | None = None


class TenantScopeError(AssertionError):
    """A query of clinic data without a tenant criterion (raised only in test mode)."""


@contextmanager
def all_tenants(reason: str) -> Iterator[None]:
    """Queries in this block read across clinics on purpose; `reason` says why, for the reader."""
    token = _cross_tenant_reason.set(reason)
    try:
        yield
    finally:
        _cross_tenant_reason.reset(token)


def tenant_tables() -> set:
    global _tenant_tables
    if _tenant_tables is None:
        mappers = db.Model.registry.mappers
        _tenant_tables = {mapper.local_table for mapper in mappers if issubclass(mapper.class_, TenantScoped)}
    return _tenant_tables


def _plain(element):
    deannotate = getattr(element, "_deannotate", None)
    return deannotate() if deannotate is not None else element


def _is_tenant_from(from_) -> bool:
    tables = tenant_tables()
    return from_ in tables or getattr(from_, "element", None) in tables  # a table, or an alias of one


def _conjuncts(clause) -> Iterator:
    """The parts of a criterion joined by AND (a part under OR or NOT is not a limit on its own)."""
    if clause is None:
        return
    if isinstance(clause, BooleanClauseList) and clause.operator is operators.and_:
        for part in clause.clauses:
            yield from _conjuncts(part)
    elif isinstance(clause, Grouping):
        yield from _conjuncts(clause.element)
    else:
        yield clause


def _tenant_column_of(element, froms: set):
    """The FROM entry whose `tenant_id` column `element` is, if it is one."""
    element = _plain(element)
    if isinstance(element, ColumnClause) and element.name == "tenant_id":
        table = _plain(element.table)
        if table in froms:
            return table
    return None


def _is_column(element) -> bool:
    return isinstance(_plain(element), ColumnClause)


def unscoped_tables(statement) -> list[str]:
    """The tenant-scoped tables this SELECT reads without a tenant criterion (names, for the message)."""
    if isinstance(statement, CompoundSelect):
        return [name for select in statement.selects for name in unscoped_tables(select)]
    if not isinstance(statement, Select):
        return []
    froms: set = set()
    criteria = list(_conjuncts(statement.whereclause))
    missing: list[str] = []

    def collect(from_) -> None:
        from_ = _plain(from_)
        if isinstance(from_, Join):
            collect(from_.left)
            collect(from_.right)
            criteria.extend(_conjuncts(from_.onclause))
        elif isinstance(from_, Subquery):
            missing.extend(unscoped_tables(from_.element))
        elif _is_tenant_from(from_):
            froms.add(from_)

    for from_ in statement.get_final_froms():
        collect(from_)
    if not froms:
        return missing
    scoped: set = set()
    links: list[tuple] = []
    for criterion in criteria:
        if not isinstance(criterion, BinaryExpression):
            continue
        if criterion.operator not in (operators.eq, operators.in_op):
            continue
        left = _tenant_column_of(criterion.left, froms)
        right = _tenant_column_of(criterion.right, froms)
        if left is not None and right is not None:
            links.append((left, right))
        elif left is not None and not _is_column(criterion.right):
            scoped.add(left)
        elif right is not None and not _is_column(criterion.left):
            scoped.add(right)
    grew = True
    while grew:
        grew = False
        for left, right in links:
            if (left in scoped) != (right in scoped):
                scoped.update((left, right))
                grew = True
    missing.extend(sorted(str(getattr(from_, "name", from_)) for from_ in froms - scoped))
    return missing


def _app_frame() -> str | None:
    """Where in the app's code (file:line) this query comes from, or None when the tests sent it."""
    frame = sys._getframe(2)
    while frame is not None:
        filename = frame.f_code.co_filename
        if not filename.startswith(_SKIPPED_FRAMES) and "/flask_sqlalchemy/" not in filename:
            if filename.startswith(_PACKAGE):
                return f"{filename[len(_PACKAGE) :]}:{frame.f_lineno} in {frame.f_code.co_name}"
            return None
        frame = frame.f_back
    return None


@event.listens_for(Session, "do_orm_execute")
def _check_tenant_scope(state: ORMExecuteState) -> None:
    if not state.is_select or state.is_column_load or state.is_relationship_load:
        return
    if not has_app_context() or not current_app.config.get("TENANT_SCOPE_CHECK"):
        return
    if state.execution_options.get(ALL_TENANTS_OPTION) or _cross_tenant_reason.get() is not None:
        return
    where = _app_frame()
    if where is None:
        return
    missing = unscoped_tables(state.statement)
    if missing:
        message = f"{where}: SELECT of {', '.join(missing)} without a tenant_id criterion:\n{state.statement}"
        TENANT_SCOPE_VIOLATIONS.append(message)
        raise TenantScopeError(message)
