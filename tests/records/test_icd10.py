"""The ICD-10-CM list: loaded once per test database (tests/conftest.py), searched by the diagnosis typeahead,
and used to check diagnosis codes."""

from __future__ import annotations

import pytest
from flask import render_template
from sqlalchemy import event, func, select

from healthcrm.extensions import db
from healthcrm.records.icd10 import find_code, load_codes, search_codes
from healthcrm.records.models import Icd10Code

PACKAGED_CODES = 95_622


def codes_of(results: list[Icd10Code]) -> list[str]:
    return [c.display_code for c in results]


def stored_count() -> int:
    return db.session.scalar(select(func.count()).select_from(Icd10Code))


@pytest.fixture
def statements(app):
    """The SQL statements sent to the database while the test runs."""
    seen: list[str] = []

    def record(_conn, _cursor, statement, *_args) -> None:
        seen.append(statement.lstrip().split(None, 1)[0].upper())

    event.listen(db.engine, "before_cursor_execute", record)
    yield seen
    event.remove(db.engine, "before_cursor_execute", record)


def test_every_packaged_code_is_loaded(app):
    assert stored_count() == PACKAGED_CODES


def test_loading_again_writes_nothing(app, statements):
    assert load_codes() == PACKAGED_CODES
    assert stored_count() == PACKAGED_CODES
    assert not {"INSERT", "UPDATE", "DELETE"} & set(statements)


def test_loading_restores_missing_codes_and_changed_names(app):
    db.session.delete(db.session.get(Icd10Code, "K7030"))
    db.session.get(Icd10Code, "K7031").name = "Renamed by hand"
    db.session.commit()

    assert load_codes() == PACKAGED_CODES

    db.session.expire_all()
    assert db.session.get(Icd10Code, "K7030").name == "Alcoholic cirrhosis of liver without ascites"
    assert db.session.get(Icd10Code, "K7031").name == "Alcoholic cirrhosis of liver with ascites"


@pytest.mark.parametrize(
    ("code", "shown"),
    [("A00", "A00"), ("A000", "A00.0"), ("K7031", "K70.31"), ("S52371A", "S52.371A")],
)
def test_codes_are_shown_with_the_dot_after_the_category(app, code, shown):
    row = db.session.get(Icd10Code, code)
    assert row.display_code == shown
    assert row.search_text.startswith(f"{code.lower()} {shown.lower()} ")


def test_billable_flag_comes_from_the_list(app):
    assert db.session.get(Icd10Code, "K7031").billable
    assert not db.session.get(Icd10Code, "K703").billable


@pytest.mark.parametrize("query", ["K70.3", "k70.3", "K703", "k703", "  K70.3  "])
def test_code_prefix_with_or_without_dot_finds_the_category_then_its_codes(app, query):
    assert codes_of(search_codes(query))[:3] == ["K70.3", "K70.30", "K70.31"]


def test_code_prefix_puts_the_exact_code_first_then_billable_then_shorter_codes(app):
    found = search_codes("K70", limit=40)
    assert found[0].display_code == "K70"
    rest = found[1:]
    assert all(c.code.startswith("K70") for c in rest)
    assert [(not c.billable, len(c.code), c.code) for c in rest] == sorted(
        (not c.billable, len(c.code), c.code) for c in rest
    )
    assert codes_of(rest[:3]) == ["K70.0", "K70.2", "K70.9"]


def test_words_find_codes_by_name_in_any_order_and_case(app):
    assert "K70.31" in codes_of(search_codes("alcoholic cirrhosis ascites"))
    assert "K70.31" in codes_of(search_codes("ASCITES Alcoholic CIRRHOSIS"))


def test_every_word_must_match(app):
    found = search_codes("cirrhosis ascites")
    assert found
    assert all("cirrhosis" in c.name.lower() and "ascites" in c.name.lower() for c in found)
    assert search_codes("cirrhosis xylophone") == []


def test_word_search_lists_billable_codes_first(app):
    found = search_codes("cirrhosis", limit=50)
    flags = [c.billable for c in found]
    assert flags == sorted(flags, reverse=True)


def test_code_like_word_also_finds_names(app):
    # "b12" looks like a code but none starts with it; vitamin B12 deficiency does mention it.
    assert any("b12" in c.name.lower() for c in search_codes("b12"))


def test_like_wildcards_in_the_query_are_plain_characters(app):
    assert search_codes("%%") == []
    assert search_codes("__") == []


def test_limit_is_respected(app):
    assert len(search_codes("diabetes")) == 15
    assert len(search_codes("diabetes", limit=5)) == 5
    assert len(search_codes("E11", limit=3)) == 3
    assert search_codes("diabetes", limit=0) == []


@pytest.mark.parametrize("query", ["", " ", "k", "  k  ", None])
def test_short_queries_find_nothing(app, query):
    assert search_codes(query) == []


def test_overlong_query_is_cut_not_refused(app):
    assert search_codes("cirrhosis " + "x" * 200) == []
    assert search_codes("alcoholic cirrhosis of liver with ascites" + " " * 100)


@pytest.mark.parametrize("spelling", ["K70.31", "k7031", "K7031", " k70.31 "])
def test_find_code_accepts_both_spellings(app, spelling):
    assert find_code(spelling).code == "K7031"


@pytest.mark.parametrize("spelling", ["XYZ", "K70.3x", "K7.031", "K70.", "", "K70.31.", "%", None])
def test_find_code_rejects_unknown_or_malformed_codes(app, spelling):
    assert find_code(spelling) is None


def test_load_command_reports_the_count(app):
    result = app.test_cli_runner().invoke(args=["icd10", "load"])
    assert result.exit_code == 0, result.output
    assert "95,622 ICD-10-CM codes loaded in" in result.output


def test_options_fragment_lists_picks_and_marks_codes_not_billable(app):
    with app.test_request_context():
        html = render_template("records/_icd10_options.html", codes=search_codes("K70.3"), query="K70.3")
    assert '<ul role="listbox" id="icd10-results"' in html
    assert html.count('role="option"') == 3
    assert 'data-code="K70.31" data-name="Alcoholic cirrhosis of liver with ascites"' in html
    assert "<strong>K70.31</strong> Alcoholic cirrhosis of liver with ascites" in html
    assert html.count("not billable") == 1  # K70.3, the category
    assert "<script" not in html
    assert "style=" not in html
    assert "hx-on" not in html


def test_options_fragment_says_when_nothing_matches(app):
    with app.test_request_context():
        html = render_template("records/_icd10_options.html", codes=[], query="<b>zzz</b>")
    assert '<p class="muted" id="icd10-results">No matching codes.</p>' in html
    assert "<b>" not in html
