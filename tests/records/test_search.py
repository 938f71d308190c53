"""The records text search: every part of a record it promises to find, kept current when any of them
changes (the record, its diagnoses, its patient's name), and never across clinics."""

from __future__ import annotations

from datetime import datetime

import pytest
from sqlalchemy import text

from healthcrm.audit.services import Actor
from healthcrm.extensions import db
from healthcrm.patients.services import EDITABLE_FIELDS, update_patient
from healthcrm.records.search import build_search_text
from healthcrm.records.services import (
    DiagnosisInput,
    RecordFilters,
    RecordInput,
    create_record,
    delete_record,
    search_records,
    update_record,
)
from tests.factories import make_patient, make_tenant, make_user


def _actor(user) -> Actor:
    return Actor(tenant_id=user.tenant_id, user_id=user.id, role=user.role)


def _input(doctor, complaint: str, codes: list[str], notes: str | None = None) -> RecordInput:
    return RecordInput(
        doctor_id=doctor.id,
        visit_at=datetime(2026, 11, 20, 9, 30),
        chief_complaint=complaint,
        notes=notes,
        diagnoses=[DiagnosisInput(code=code, is_primary=index == 0) for index, code in enumerate(codes)],
    )


def _found(actor: Actor, query: str) -> list[str]:
    return [record.chief_complaint for record in search_records(actor, RecordFilters(query=query)).records]


@pytest.fixture
def clinic(app):
    tenant = make_tenant()
    doctor = make_user(tenant, "doctor")
    liver = make_patient(tenant, first_name="Liv", last_name="Hepburn", mrn="MRN-424242")
    lungs = make_patient(tenant, first_name="Ola", last_name="Breath", mrn="MRN-777001")
    actor = _actor(doctor)
    create_record(
        actor, liver.id, _input(doctor, "Yellow eyes", ["K70.31", "E11.9"], notes="Drinks 50% less")
    )
    create_record(actor, lungs.id, _input(doctor, "Cough", ["J20.9"]))
    return {"tenant": tenant, "doctor": doctor, "actor": actor, "liver": liver, "lungs": lungs}


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("yellow", ["Yellow eyes"]),  # complaint
        ("EYES", ["Yellow eyes"]),  # any case
        ("drinks", ["Yellow eyes"]),  # notes
        ("hepburn", ["Yellow eyes"]),  # patient last name
        ("liv", ["Yellow eyes"]),  # first name (three letters: the trigram index)
        ("424242", ["Yellow eyes"]),  # MRN
        ("K70.31", ["Yellow eyes"]),  # code with its dot
        ("k7031", ["Yellow eyes"]),  # code without it
        ("alcoholic", ["Yellow eyes"]),  # diagnosis name (from the code list)
        ("bronchitis", ["Cough"]),
        ("e1", ["Yellow eyes"]),  # two characters: too short for the index, still found
        ("ye", ["Yellow eyes"]),
        ("50%", ["Yellow eyes"]),  # LIKE wildcards are literal
        ("c%h", []),  # would find "cough" if % were a wildcard
        ("c_ugh", []),
        ('"', []),  # FTS syntax characters are literal
        ("cough hepburn", []),  # every term must match the same record
        ("cough breath", ["Cough"]),
    ],
)
def test_search_finds_each_part_of_a_record(clinic, query, expected):
    assert _found(clinic["actor"], query) == expected


def test_search_follows_changes_to_the_record_its_diagnoses_and_its_patient(clinic):
    actor, doctor = clinic["actor"], clinic["doctor"]
    record = search_records(actor, RecordFilters(query="cough")).records[0]
    update_record(actor, record.id, _input(doctor, "Wheeze", ["J45.909"]))
    assert _found(actor, "cough") == []
    assert _found(actor, "bronchitis") == []
    assert _found(actor, "wheeze") == ["Wheeze"]
    assert _found(actor, "asthma") == ["Wheeze"]

    patient = clinic["lungs"]
    values = {name: getattr(patient, name) for name in EDITABLE_FIELDS}
    update_patient(actor, patient.id, {**values, "last_name": "Zephyrine"}, [])
    assert _found(actor, "zephyrine") == ["Wheeze"]
    assert _found(actor, "breath") == []

    delete_record(actor, record.id)
    assert _found(actor, "wheeze") == []


def test_search_never_crosses_clinics(clinic):
    other = make_tenant("Other Clinic")
    other_doctor = make_user(other, "doctor")
    twin = make_patient(other, first_name="Liv", last_name="Hepburn", mrn="MRN-424242")
    create_record(_actor(other_doctor), twin.id, _input(other_doctor, "Other clinic's eyes", ["K70.31"]))
    assert _found(clinic["actor"], "hepburn") == ["Yellow eyes"]
    assert _found(_actor(other_doctor), "hepburn") == ["Other clinic's eyes"]


def test_the_index_holds_exactly_the_stored_text(clinic):
    """On SQLite the FTS table is kept by triggers; its integrity check compares it with the records."""
    if db.session.get_bind().dialect.name != "sqlite":
        pytest.skip("the FTS5 table exists on SQLite only (PostgreSQL indexes the column itself)")
    db.session.execute(text("INSERT INTO record_search(record_search, rank) VALUES ('integrity-check', 1)"))


def test_search_text_joins_parts_one_per_line():
    assert build_search_text("Cough ", None, "Ola", "Breath", "MRN-1", [("J20.9", "Acute bronchitis")]) == (
        "cough\nola\nbreath\nmrn-1\nacute bronchitis\nj20.9\nj209"
    )


# --- why a record matched ------------------------------------------------------------------------------


def _row(page: str, complaint_text: str) -> str:
    """The results row whose complaint cell holds `complaint_text` (as rendered)."""
    rows = page.split("<tbody>")[1].split("</tbody>")[0].split("<tr>")
    return next(row for row in rows if complaint_text in row)


def test_search_results_mark_the_matched_words_and_show_where_they_matched(client, clinic):
    from tests.factories import login

    login(client, clinic["doctor"].email)
    page = client.get("/records", query_string={"q": "hep alco drinks"}).get_data(as_text=True)
    row = _row(page, "Yellow eyes")
    # In the patient's name as the row shows it, and in the primary diagnosis.
    assert "<mark>Hep</mark>burn" in row and "<mark>Alco</mark>holic" in row
    # Notes are not a column: a short snippet says the notes matched.
    assert '<span class="muted">Notes:</span> <mark>Drinks</mark> 50% less' in row
    # A code typed without its dot marks the whole code; a second diagnosis gets a snippet of its own.
    page = client.get("/records", query_string={"q": "e119"}).get_data(as_text=True)
    row = _row(page, "Yellow eyes")
    assert '<span class="muted">Diagnosis:</span> <mark>E11.9</mark> Type 2 diabetes' in row
    # Without a search nothing is marked.
    assert "<mark>" not in client.get("/records").get_data(as_text=True)


def test_marked_words_are_escaped(client, clinic):
    from tests.factories import login

    actor, doctor = clinic["actor"], clinic["doctor"]
    create_record(actor, clinic["lungs"].id, _input(doctor, "<b>rash</b> & itch", [], notes="x <script>y"))
    login(client, doctor.email)
    page = client.get("/records", query_string={"q": "<b>rash"}).get_data(as_text=True)
    assert "<mark>&lt;b&gt;rash</mark>&lt;/b&gt; &amp; itch" in page and "<b>rash" not in page
    page = client.get("/records", query_string={"q": "<script"}).get_data(as_text=True)
    assert "x <mark>&lt;script</mark>&gt;y" in page and "<script>y" not in page


def test_a_long_note_is_cut_to_a_snippet_around_its_match():
    from healthcrm.records.search import SNIPPET_CHARS, snippet

    text = "a" * 300 + " ascites seen " + "b" * 300
    parts = snippet(text, ["ascites"])
    shown = "".join(piece for piece, _ in parts)
    assert parts[0] == ("…", False) and parts[-1] == ("…", False)
    assert ("ascites", True) in parts and len(shown) <= SNIPPET_CHARS + 2
