"""The records text search: one lower-cased `search_text` per record, indexed for substring search.

A record is found by its chief complaint, notes, patient (first name, last name, MRN) and diagnoses (name,
code with and without its dot). Those live in three tables; searching them with an OR of LIKEs across
joins reads the whole clinic. Instead each record keeps their text in one column, kept current by a
session hook (any change to a record, its diagnoses or its patient's name or MRN refreshes it in the same
flush), and that column is indexed:

- SQLite: an FTS5 table with the trigram tokenizer (external content, kept by triggers), so a term of three
  or more characters is a substring lookup in the index. Shorter terms fall back to LIKE on the column.
- PostgreSQL: a pg_trgm GIN index on the column, which LIKE '%term%' uses.

The index objects are created with the table (`create_all`, used by the tests) and by the migration
that added the column; `flask db` autogenerate leaves them alone (see `healthcrm.extensions`).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from sqlalchemy import DDL, ColumnElement, event, inspect, literal_column, select, table
from sqlalchemy.orm import Session

from ..extensions import db
from ..patients.models import Patient
from .models import Diagnosis, MedicalRecord

FTS_TABLE = "record_search"
# The SQLite trigram tokenizer indexes runs of three characters: shorter terms cannot use it.
FTS_MIN_TERM = 3
# A field shown as a snippet (notes) shows this many characters around its first match.
SNIPPET_CHARS = 140
SNIPPET_BEFORE = 40

SQLITE_DDL = [
    "CREATE VIRTUAL TABLE IF NOT EXISTS record_search USING fts5("
    "search_text, content='medical_records', content_rowid='id', tokenize='trigram')",
    "CREATE TRIGGER IF NOT EXISTS record_search_ai AFTER INSERT ON medical_records BEGIN "
    "INSERT INTO record_search(rowid, search_text) VALUES (new.id, new.search_text); END",
    "CREATE TRIGGER IF NOT EXISTS record_search_ad AFTER DELETE ON medical_records BEGIN "
    "INSERT INTO record_search(record_search, rowid, search_text) VALUES ('delete', old.id, old.search_text);"
    " END",
    "CREATE TRIGGER IF NOT EXISTS record_search_au AFTER UPDATE OF search_text ON medical_records BEGIN "
    "INSERT INTO record_search(record_search, rowid, search_text) VALUES ('delete', old.id, old.search_text);"
    " INSERT INTO record_search(rowid, search_text) VALUES (new.id, new.search_text); END",
]
SQLITE_DROP = ["DROP TABLE IF EXISTS record_search"]
POSTGRES_DDL = [
    "CREATE EXTENSION IF NOT EXISTS pg_trgm",
    "CREATE INDEX IF NOT EXISTS ix_records_search_trgm ON medical_records "
    "USING gin (search_text gin_trgm_ops)",
]

for _statement in SQLITE_DDL:
    event.listen(MedicalRecord.__table__, "after_create", DDL(_statement).execute_if(dialect="sqlite"))
for _statement in SQLITE_DROP:
    event.listen(MedicalRecord.__table__, "before_drop", DDL(_statement).execute_if(dialect="sqlite"))
for _statement in POSTGRES_DDL:
    event.listen(MedicalRecord.__table__, "after_create", DDL(_statement).execute_if(dialect="postgresql"))


def build_search_text(
    chief_complaint: str | None,
    notes: str | None,
    first_name: str | None,
    last_name: str | None,
    mrn: str | None,
    diagnoses: Iterable[tuple[str, str]],
) -> str:
    """The text a record is found by, lower-cased, one part per line (a search term has no whitespace,
    so it never matches across two parts). `diagnoses` are (code, name) pairs."""
    parts = [chief_complaint, notes, first_name, last_name, mrn]
    for code, name in diagnoses:
        # "K70.31" and "k7031" both find a diagnosis.
        parts += [name, code, (code or "").replace(".", "")]
    return "\n".join(part.strip().lower() for part in parts if part and part.strip())


def record_search_text(record: MedicalRecord, session: Session) -> str:
    patient = record.patient
    if patient is None and record.patient_id is not None:
        patient = session.get(Patient, record.patient_id)
    return build_search_text(
        record.chief_complaint,
        record.notes,
        patient.first_name if patient else None,
        patient.last_name if patient else None,
        patient.mrn if patient else None,
        ((diagnosis.code, diagnosis.name) for diagnosis in record.diagnoses),
    )


def _fts_phrase(term: str) -> str:
    return '"' + term.replace('"', '""') + '"'


def _like_pattern(term: str) -> str:
    escaped = term.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


def search_terms(query: str) -> list[str]:
    """The terms of a search: its whitespace-separated words, lower-cased."""
    return [term.lower() for term in query.split()]


def text_matches(query: str) -> list[ColumnElement[bool]]:
    """Conditions for records whose complaint, notes, patient name or MRN, or a diagnosis name or code
    contain every whitespace-separated term of `query` (case-insensitive, each term a literal substring)."""
    terms = search_terms(query)
    if db.session.get_bind().dialect.name == "sqlite":
        indexed = [term for term in terms if len(term) >= FTS_MIN_TERM]
        conditions = [_like(term) for term in terms if len(term) < FTS_MIN_TERM]
        if indexed:
            # One lookup in the index for all the long terms (an FTS5 AND of quoted phrases).
            matching = (
                select(literal_column("rowid"))
                .select_from(table(FTS_TABLE))
                .where(literal_column(FTS_TABLE).op("MATCH")(" AND ".join(map(_fts_phrase, indexed))))
            )
            conditions.insert(0, MedicalRecord.id.in_(matching))
        return conditions
    return [_like(term) for term in terms]


def _like(term: str) -> ColumnElement[bool]:
    return MedicalRecord.search_text.like(_like_pattern(term), escape="\\")


@event.listens_for(Session, "before_flush")
def _refresh_search_text(session: Session, _flush_context, _instances) -> None:
    """Keep `MedicalRecord.search_text` current in the flush that changes what it is made of."""
    with session.no_autoflush:
        for record in _touched_records(session):
            if record in session.deleted:
                continue
            text = record_search_text(record, session)
            if record.search_text != text:
                record.search_text = text


def _touched_records(session: Session) -> set[MedicalRecord]:
    """New or changed records, records whose diagnoses changed, records of patients renamed."""
    records: set[MedicalRecord] = set()
    changed_patients: list[Patient] = []
    for instance in (*session.new, *session.dirty):
        if isinstance(instance, MedicalRecord):
            records.add(instance)
        elif isinstance(instance, Diagnosis):
            record = instance.record
            if record is None and instance.record_id is not None:
                record = session.get(MedicalRecord, instance.record_id)
            if record is not None:
                records.add(record)
        elif isinstance(instance, Patient) and instance.id is not None and _names_changed(instance):
            changed_patients.append(instance)
    if changed_patients:
        records.update(
            session.scalars(
                select(MedicalRecord).where(
                    MedicalRecord.tenant_id.in_({patient.tenant_id for patient in changed_patients}),
                    MedicalRecord.patient_id.in_([patient.id for patient in changed_patients]),
                )
            )
        )
    return records


def _names_changed(patient: Patient) -> bool:
    state = inspect(patient)
    return any(state.attrs[name].history.has_changes() for name in ("first_name", "last_name", "mrn"))


# --- why a record matched ----------------------------------------------------------------------------------

Parts = list[tuple[str, bool]]  # a text cut into (piece, matched) pieces, in order


@dataclass(frozen=True)
class RecordMatch:
    """Why one record matched a search: `mark` cuts a text the row shows into matched and other pieces, and
    `snippets` are the fields the row does not show (notes, diagnoses other than the primary one) that
    hold a term, each as (field label, pieces of a short snippet). The template marks the matched pieces
    with <mark> and escapes every piece."""

    terms: tuple[str, ...]
    snippets: list[tuple[str, Parts]] = field(default_factory=list)

    def mark(self, text: str | None) -> Parts:
        return mark_terms(text or "", self.terms)

    def mark_code(self, code: str | None) -> Parts:
        """A diagnosis code, whole, when a term matched it written without its dot ("k7031")."""
        code = code or ""
        parts = self.mark(code)
        if len(parts) == 1 and _code_matches(code, self.terms):
            return [(code, True)]
        return parts


def _pattern(terms: Sequence[str]) -> re.Pattern[str] | None:
    words = sorted({term for term in terms if term}, key=len, reverse=True)
    return re.compile("|".join(map(re.escape, words)), re.IGNORECASE) if words else None


def mark_terms(text: str, terms: Sequence[str]) -> Parts:
    """`text` cut into pieces, the pieces that are one of `terms` (any case) marked True."""
    pattern = _pattern(terms)
    if pattern is None or not text:
        return [(text, False)] if text else []
    parts: Parts = []
    position = 0
    for found in pattern.finditer(text):
        if found.start() > position:
            parts.append((text[position : found.start()], False))
        parts.append((found.group(0), True))
        position = found.end()
    if position < len(text):
        parts.append((text[position:], False))
    return parts


def _code_matches(code: str, terms: Sequence[str]) -> bool:
    bare = code.replace(".", "").lower()
    return any(term in bare for term in terms)


def snippet(text: str, terms: Sequence[str]) -> Parts:
    """A short piece of a long text around its first match, marked, with … where it was cut."""
    pattern = _pattern(terms)
    found = pattern.search(text) if pattern else None
    if found is None:
        return []
    start = max(0, found.start() - SNIPPET_BEFORE)
    end = min(len(text), start + SNIPPET_CHARS)
    piece = " ".join(text[start:end].split())
    parts = mark_terms(piece, terms)
    if start > 0:
        parts.insert(0, ("…", False))
    if end < len(text):
        parts.append(("…", False))
    return parts


def record_matches(records: Iterable[MedicalRecord], query: str | None) -> dict[int, RecordMatch]:
    """Why each record (of a page of results) matched `query`, by record id; empty without a query.

    Worked out here, not by the database, so it reads the same on SQLite and PostgreSQL: the terms are
    literal substrings of the record's fields, as `text_matches` finds them.
    """
    terms = tuple(search_terms(query or ""))
    if not terms:
        return {}
    matches = {}
    for record in records:
        match = RecordMatch(terms=terms)
        if record.notes and any(marked for _, marked in mark_terms(record.notes, terms)):
            match.snippets.append(("Notes", snippet(record.notes, terms)))
        primary = record.primary_diagnosis
        for diagnosis in record.diagnoses:
            if diagnosis is primary:
                continue
            code_parts, name_parts = match.mark_code(diagnosis.code), match.mark(diagnosis.name)
            if any(marked for _, marked in (*code_parts, *name_parts)):
                match.snippets.append(("Diagnosis", [*code_parts, (" ", False), *name_parts]))
        matches[record.id] = match
    return matches
