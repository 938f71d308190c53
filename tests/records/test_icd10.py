"""The ICD-10-CM list: loaded once per test database (tests/conftest.py), searched by the diagnosis typeahead
(an ARIA combobox per diagnosis row of the record form), and used to check diagnosis codes."""

from __future__ import annotations

import re
from html.parser import HTMLParser

import pytest
from flask import render_template
from sqlalchemy import event, func, select

from healthcrm.extensions import db
from healthcrm.records.icd10 import (
    SEARCH_QUERY_MAX_CHARS,
    find_code,
    highlight,
    load_codes,
    search_codes,
)
from healthcrm.records.models import Icd10Code
from healthcrm.records.services import MAX_DIAGNOSES
from tests.factories import login, make_patient, make_tenant, make_user

HX = {"HX-Request": "true"}

PACKAGED_CODES = 95_622
# The other tests get a small part of the list (tests/conftest.py): these need all of it.
pytestmark = pytest.mark.icd10_full


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


def test_overlong_query_is_refused_not_cut(app):
    assert search_codes("cirrhosis " + "x" * 200) == []
    assert search_codes("alcoholic cirrhosis of liver with ascites" + " " * 100)
    # Longer than the old ten characters, and than the old 60: searched whole.
    long_query = "alcoholic cirrhosis of liver with ascites alcoholic cirrhosis of liver with"
    assert len(long_query) > 60
    assert codes_of(search_codes(long_query))[0] == "K70.31"


def test_two_words_are_searched_whole_and_both_must_match(app):
    found = search_codes("alcoholic cirrhosis")
    assert found, "alcoholic cirrhosis finds nothing"
    assert all("alcoholic cirrhosis" in c.name.lower() for c in found)
    assert codes_of(found)[:2] == ["K70.31", "K70.30"]  # billable before the category K70.3


def test_cirrhosis_ranks_whole_word_billable_short_names_first(app):
    found = codes_of(search_codes("cirrhosis", limit=5))
    assert "K74.60" in found  # Unspecified cirrhosis of liver
    assert found[0] != "K71.7"
    assert "K71.7" not in found


def test_whole_word_matches_come_before_parts_of_words(app):
    # "liver" is a whole word in many names; "deliver" only contains it.
    found = search_codes("liver", limit=15)
    assert found and all(re.search(r"\bliver\b", c.name.lower()) for c in found)


def test_exact_code_comes_first_even_among_name_matches(app):
    assert codes_of(search_codes("K74.60"))[0] == "K74.60"
    assert codes_of(search_codes("k7460"))[0] == "K74.60"


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


def _options(codes, row: int = 0, searched: bool = True, words=(), too_long: bool = False) -> str:
    return render_template(
        "records/_icd10_options.html",
        codes=codes,
        row=row,
        searched=searched,
        words=list(words),
        highlight=highlight,
        too_long=too_long,
        max_chars=SEARCH_QUERY_MAX_CHARS,
    )


def test_highlight_marks_every_typed_word_and_escapes_the_rest(app):
    assert str(highlight("Alcoholic cirrhosis of liver", ["cirrhosis", "alcoholic"])) == (
        "<mark>Alcoholic</mark> <mark>cirrhosis</mark> of liver"
    )
    assert str(highlight("<b>&", ["b"])) == "&lt;<mark>b</mark>&gt;&amp;"
    assert str(highlight("x<y", [])) == "x&lt;y"
    # A typed word that is HTML is escaped inside the mark as well.
    assert str(highlight("a<b>c", ["<b>"])) == "a<mark>&lt;b&gt;</mark>c"


def test_options_fragment_says_when_the_query_is_too_long(app):
    with app.test_request_context():
        html = _options([], too_long=True)
    assert f"at most {SEARCH_QUERY_MAX_CHARS} characters" in html


def test_options_fragment_lists_options_with_ids_unique_to_their_row(app):
    with app.test_request_context():
        html = _options(search_codes("K70.3"), row=2)
    # Options only: they go into the row's listbox (#icd10-listbox-2), which stays on the page.
    assert "<ul" not in html and 'role="listbox"' not in html
    assert re.findall(r'<li class="icd10-option" id="([^"]+)" role="option" aria-selected="false"', html) == [
        "icd10-listbox-2-option-0",
        "icd10-listbox-2-option-1",
        "icd10-listbox-2-option-2",
    ]
    assert 'data-code="K70.31" data-name="Alcoholic cirrhosis of liver with ascites"' in html
    assert "<strong>K70.31</strong> Alcoholic cirrhosis of liver with ascites" in html  # no words typed
    assert html.count("not billable") == 1  # K70.3, the category
    # The row's live region hears how many, out of band.
    assert '<p id="icd10-status-2" data-hx-swap-oob="innerHTML">' in html
    assert "3 matching codes" in html
    assert "<script" not in html
    assert "style=" not in html
    assert "hx-on" not in html


def test_options_fragment_says_when_nothing_matches_in_the_live_region(app):
    with app.test_request_context():
        html = _options([], row=1)
    assert 'role="option"' not in html and "icd10-listbox" not in html
    assert re.sub(r"\s+", " ", html).strip() == (
        '<p id="icd10-status-1" data-hx-swap-oob="innerHTML">'
        '<span class="icd10-none">No matching codes.</span></p>'
    )


def test_options_fragment_says_nothing_before_the_query_is_long_enough(app):
    with app.test_request_context():
        html = _options([], searched=False)
    assert re.sub(r"\s+", " ", html).strip() == '<p id="icd10-status-0" data-hx-swap-oob="innerHTML"></p>'


# --- the typeahead on the record form ----------------------------------------------------------------------


class _Elements(HTMLParser):
    """Every element's attributes, in page order."""

    def __init__(self) -> None:
        super().__init__()
        self.elements: list[dict[str, str | None]] = []

    def handle_starttag(self, tag, attrs) -> None:
        self.elements.append({"tag": tag, **dict(attrs)})


def _elements(html: str) -> list[dict[str, str | None]]:
    parser = _Elements()
    parser.feed(html)
    return parser.elements


@pytest.fixture
def nurse_client(app, client):
    tenant = make_tenant()
    login(client, make_user(tenant, "nurse").email)
    return client, make_patient(tenant)


def test_each_diagnosis_code_box_is_a_combobox_controlling_its_own_listbox(nurse_client):
    client, patient = nurse_client
    elements = _elements(client.get(f"/patients/{patient.id}/records/new").get_data(as_text=True))
    ids = [element["id"] for element in elements if element.get("id")]
    assert len(ids) == len(set(ids)), "duplicate ids on the record form"
    by_id = {element["id"]: element for element in elements if element.get("id")}
    boxes = [element for element in elements if element.get("role") == "combobox"]
    assert [box["id"] for box in boxes] == ["diagnoses-0-code", "diagnoses-1-code"]
    for row, box in enumerate(boxes):
        assert box["aria-autocomplete"] == "list" and box["aria-expanded"] == "false"
        assert "aria-activedescendant" not in box
        listbox = by_id[box["aria-controls"]]
        assert (listbox["tag"], listbox["role"], listbox["id"]) == ("ul", "listbox", f"icd10-listbox-{row}")
        assert "hidden" in listbox and listbox["aria-label"] == f"ICD-10-CM codes for diagnosis {row + 1}"
        assert box["data-hx-target"] == f"#icd10-listbox-{row}"
        assert box["data-hx-get"] == f"/records/icd10/{row}"
        assert by_id[f"icd10-status-{row}"]["role"] == "status"
    # The behaviour comes from a file of our own, under the CSP nonce; no inline script.
    scripts = [element for element in elements if element["tag"] == "script"]
    assert any(s.get("src", "").endswith("/js/icd10-combobox.js") and s.get("nonce") for s in scripts)
    assert all(s.get("src") for s in scripts)


def test_typeahead_reads_its_rows_box_and_answers_with_that_rows_ids(nurse_client):
    client, _ = nurse_client
    response = client.get(
        "/records/icd10/3", query_string={"diagnoses-3-code": "alcoholic cirrhosis ascites"}, headers=HX
    )
    body = response.get_data(as_text=True)
    assert response.status_code == 200 and "<html" not in body
    assert 'id="icd10-listbox-3-option-0"' in body and 'data-code="K70.31"' in body
    assert 'id="icd10-status-3"' in body
    assert "<mark>Alcoholic</mark> <mark>cirrhosis</mark> of liver with <mark>ascites</mark>" in body
    # Another row's box is not this row's query.
    response = client.get("/records/icd10/3", query_string={"diagnoses-0-code": "K70.31"}, headers=HX)
    assert 'role="option"' not in response.get_data(as_text=True)


def test_typeahead_refuses_an_overlong_query_with_a_message(nurse_client):
    client, _ = nurse_client
    query = "cirrhosis " * 20
    response = client.get("/records/icd10/0", query_string={"diagnoses-0-code": query}, headers=HX)
    body = response.get_data(as_text=True)
    assert response.status_code == 200 and 'role="option"' not in body
    assert f"Search with at most {SEARCH_QUERY_MAX_CHARS} characters." in body


def test_code_box_does_not_cut_what_is_typed(nurse_client):
    client, patient = nurse_client
    elements = _elements(client.get(f"/patients/{patient.id}/records/new").get_data(as_text=True))
    boxes = [element for element in elements if element.get("role") == "combobox"]
    assert boxes and all("maxlength" not in box for box in boxes)


@pytest.mark.parametrize("row", [MAX_DIAGNOSES, 99])
def test_typeahead_of_a_row_the_form_cannot_have_is_not_found(nurse_client, row):
    client, _ = nurse_client
    response = client.get(f"/records/icd10/{row}", query_string={f"diagnoses-{row}-code": "K70"}, headers=HX)
    assert response.status_code == 404
