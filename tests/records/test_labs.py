"""Structured lab results: flags from the range, several rows at once, CSV import with a preview, the
trend page, who may see and change them, and their audit trail."""

from __future__ import annotations

import html
import io
import json
import re
from datetime import UTC, datetime, timedelta

import pytest
import time_machine
from sqlalchemy import event, select
from werkzeug.datastructures import FileStorage
from werkzeug.test import encode_multipart

from healthcrm.audit.models import AuditEvent
from healthcrm.audit.services import Actor
from healthcrm.extensions import db
from healthcrm.records import labs
from healthcrm.records.flowsheet import FLOWSHEET_COLUMNS
from healthcrm.records.labs import LabInput, compute_flag, parse_lab_csv, validate_lab_row
from healthcrm.records.models import LabResult, MedicalRecord
from tests.concurrency import parallel
from tests.factories import login, make_patient, make_tenant, make_user

HX = {"HX-Request": "true"}
HEADER = "code,name,value,unit,ref_low,ref_high,observed_at\n"
CSV_TEXT = re.compile(r'<textarea name="csv_text"[^>]*>\n(.*?)</textarea>', re.DOTALL)
IMPORT_TOKEN = re.compile(r'<input type="hidden" name="import_token" value="([^"]*)">')
HIDDEN_SERIES = re.compile(r'<div id="lab-series" hidden>(.*?)</div>', re.DOTALL)
LAB_VALUES = ("13.5", "9.1", "abc", "140", "No growth")


@pytest.fixture
def clinic(app, client):
    tenant = make_tenant()
    nurse = make_user(tenant, "nurse")
    login(client, nurse.email)
    return tenant, nurse, make_patient(tenant)


def _stored(patient) -> list[LabResult]:
    return list(
        db.session.scalars(select(LabResult).where(LabResult.patient_id == patient.id).order_by(LabResult.id))
    )


def _events(action: str) -> list[AuditEvent]:
    return list(
        db.session.scalars(select(AuditEvent).where(AuditEvent.action == action).order_by(AuditEvent.id))
    )


def _actor(user) -> Actor:
    return Actor(tenant_id=user.tenant_id, user_id=user.id, role=user.role)


def _lab(code="718-7", value="13.5", when="2025-03-14 09:30", **raw) -> LabInput:
    row, errors = validate_lab_row({"code": code, "value": value, "observed_at": when, **raw})
    assert errors == [] and row is not None
    return row


def _form(*rows: dict, shared_time: str = "") -> dict:
    data = {"observed_at": shared_time}
    for n, row in enumerate(rows):
        data.update({f"rows-{n}-{name}": value for name, value in row.items()})
    return data


def _post_multipart(client, url: str, values: dict):
    """A multipart post encoded in memory: the test client spools bodies over 500 kB to a temporary file
    that it never closes (a ResourceWarning, which fails the run)."""
    boundary, body = encode_multipart({**values, "csrf_token": client.csrf_token()})
    return client.post(url, data=body, content_type=f"multipart/form-data; boundary={boundary}")


def _upload(client, patient, text: str | bytes):
    body = text.encode() if isinstance(text, str) else text
    url = f"/patients/{patient.id}/labs/import"
    if len(body) > 100_000:
        file = FileStorage(io.BytesIO(body), filename="labs.csv", content_type="text/csv")
        return _post_multipart(client, url, {"step": "preview", "file": file})
    return client.post(
        url,
        data={"step": "preview", "file": (io.BytesIO(body), "labs.csv")},
        content_type="multipart/form-data",
    )


def _confirm(client, patient, preview, text: str | None = None):
    """Press the preview's save button: its file (or `text` instead) and its import token, as a browser
    sends them (a textarea's line ends as CRLF)."""
    page = preview.get_data(as_text=True)
    if text is None:
        text = html.unescape(CSV_TEXT.search(page).group(1))
    return client.post(
        f"/patients/{patient.id}/labs/import",
        data={
            "step": "confirm",
            "csv_text": text.replace("\n", "\r\n"),
            "import_token": IMPORT_TOKEN.search(page).group(1),
        },
        content_type="multipart/form-data",
    )


def _assert_no_values_in_audit(events: list[AuditEvent]) -> None:
    assert events
    for audit in events:
        for value in LAB_VALUES:
            assert value not in (audit.changed_fields or ""), audit.action


# --- rules ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "low", "high", "flag"),
    [
        (12.0, 12.0, 15.5, "N"),  # both ends are inside the range
        (15.5, 12.0, 15.5, "N"),
        (11.99, 12.0, 15.5, "L"),
        (15.51, 12.0, 15.5, "H"),
        (3.0, None, 5.0, "N"),
        (5.1, None, 5.0, "H"),
        (0.5, 1.0, None, "L"),
        (7.0, None, None, None),  # no range, no flag
        (None, 1.0, 2.0, None),  # text value, no flag
    ],
)
def test_flag_is_computed_from_the_range_with_both_ends_inclusive(value, low, high, flag):
    assert compute_flag(value, low, high) == flag


def test_a_known_loinc_code_fills_name_and_unit_and_clinic_time_becomes_utc():
    row, errors = validate_lab_row(
        {
            "code": " 2160-0 ",
            "value": "1.4",
            "ref_low": "0.6",
            "ref_high": "1.2",
            "observed_at": "2025-03-14 09:30",
        },
        zone="America/Chicago",
    )
    assert errors == []
    assert (row.name, row.unit, row.value_numeric, row.flag) == ("Creatinine", "mg/dL", 1.4, "H")
    assert row.observed_at == datetime(2025, 3, 14, 14, 30)  # CDT is UTC-5
    assert all(labs.is_loinc_check_digit_valid(code) for code in labs.KNOWN_TESTS)


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ({"name": "Hb", "value": "abc", "ref_low": "12", "ref_high": "15"},
         "value 'abc' is not a number and the test has a numeric reference range"),
        ({"name": "Hb", "value": "5,2", "ref_low": "1"}, "(use a dot for decimals)"),
        ({"name": "Hb", "value": "1", "observed_at": "2025-13-01"},
         "observed time '2025-13-01' is not a date like 2025-03-14 or 2025-03-14 09:30"),
        ({"code": "9999-9", "value": "1"}, "name or a known LOINC code is required"),
        ({"name": "Hb", "value": "1", "ref_low": "10", "ref_high": "5"},
         "reference low 10 is above reference high 5"),
        ({"name": "Hb", "value": "1", "ref_high": "x"}, "reference high 'x' is not a number"),
        ({"name": "Hb", "value": "1", "observed_at": "2999-01-01"},
         "observed time '2999-01-01' is in the future"),
        ({"name": "Hb", "value": ""}, "value is required"),
        ({"name": "Hb", "value": "1", "observed_at": ""}, "observed time is required"),
        ({"code": "718-8", "name": "Hb", "value": "1"},
         "code '718-8' is not a LOINC code (its check digit is wrong)"),
        ({"name": "Hb", "value": "nan", "ref_low": "1"}, "value 'nan' is not a number"),
        ({"name": "Hb", "value": "9" * 400, "ref_low": "1"}, "is not a number and the test has"),
        ({"name": "Hb", "value": "1", "observed_at": "0001-01-01"}, "'0001-01-01' is not a date like"),
    ],
)  # fmt: skip
def test_a_bad_row_gets_a_message_a_person_can_act_on(raw, message):
    row, errors = validate_lab_row({"observed_at": "2025-03-14", **raw}, zone="Asia/Tokyo")
    assert row is None
    assert any(message in error for error in errors), errors


def test_a_text_value_without_a_range_is_kept_as_text():
    row = _lab(code="", name="Urine culture", value="No growth")
    assert row.value_numeric is None and row.flag is None


# --- adding rows ---------------------------------------------------------------------------------------


def test_add_several_rows_at_once(client, clinic):
    _, nurse, patient = clinic
    response = client.post(
        f"/patients/{patient.id}/labs/add",
        data=_form(
            {"code": "718-7", "value": "9.1", "ref_low": "12", "ref_high": "15.5"},
            {"code": "", "name": "Urine culture", "value": "No growth", "observed_at": "2025-03-13"},
            {},  # an empty row is ignored
            {"code": "2951-2", "value": "140", "ref_low": "135", "ref_high": "145"},
            shared_time="2025-03-14 09:30",
        ),
    )
    assert response.status_code == 303
    stored = _stored(patient)
    assert [(r.name, r.display_value, r.unit, r.flag) for r in stored] == [
        ("Hemoglobin", "9.1", "g/dL", "L"),
        ("Urine culture", "No growth", None, None),
        ("Sodium", "140", "mmol/L", "N"),
    ]
    assert stored[0].observed_at == datetime(2025, 3, 14, 14, 30) and stored[1].observed_at == datetime(
        2025, 3, 13, 5
    )
    assert {r.entered_by_id for r in stored} == {nurse.id} and {r.record_id for r in stored} == {None}
    created = _events("lab.create")
    assert len(created) == 3 and {e.patient_id for e in created} == {patient.id}
    assert "value_numeric" in created[0].changed_fields and "flag" in created[0].changed_fields
    _assert_no_values_in_audit(created)
    assert "3 lab results saved." in client.get(f"/patients/{patient.id}/labs").get_data(as_text=True)


def test_one_invalid_row_saves_nothing_and_says_which(client, clinic):
    _, _, patient = clinic
    data = _form(
        {"code": "718-7", "value": "13.5", "observed_at": "2025-03-14"},
        {"code": "718-7", "value": "abc", "ref_low": "12", "ref_high": "15.5", "observed_at": "2025-03-14"},
    )
    response = client.post(f"/patients/{patient.id}/labs/add", data=data)
    assert response.status_code == 422
    page = response.get_data(as_text=True)
    assert "row 2: value &#39;abc&#39; is not a number and the test has a numeric reference range" in page
    assert 'value="abc"' in page and 'value="13.5"' in page  # what was typed stays in the form
    assert _stored(patient) == [] and _events("lab.create") == []

    fragment = client.post(f"/patients/{patient.id}/labs/add", data=data, headers=HX)
    assert fragment.status_code == 422
    body = fragment.get_data(as_text=True)
    assert "<html" not in body and 'id="add-results"' in body and "row 2: value" in body
    assert "HX-Request" in fragment.headers["Vary"]


def test_an_empty_form_is_refused(client, clinic):
    _, _, patient = clinic
    response = client.post(f"/patients/{patient.id}/labs/add", data=_form({}, shared_time="2025-03-14"))
    assert response.status_code == 422
    assert "Enter at least one lab result." in response.get_data(as_text=True)


def test_htmx_add_sends_the_browser_to_the_lab_page(client, clinic):
    _, _, patient = clinic
    response = client.post(
        f"/patients/{patient.id}/labs/add",
        data=_form({"code": "718-7", "value": "13"}, shared_time="2025-03-14"),
        headers=HX,
    )
    assert response.status_code == 200
    assert response.headers["HX-Redirect"] == f"/patients/{patient.id}/labs"
    assert len(_stored(patient)) == 1


def test_labs_on_a_record_must_be_on_a_draft_of_the_same_patient(app, clinic):
    tenant, nurse, patient = clinic
    doctor = make_user(tenant, "doctor")

    def record(of, status="draft"):
        row = MedicalRecord(
            tenant_id=of.tenant_id, patient_id=of.id, doctor_id=doctor.id, author_id=doctor.id,
            visit_at=datetime(2025, 3, 14, 9), chief_complaint="Check-up", status=status,
        )  # fmt: skip
        db.session.add(row)
        db.session.commit()
        return row

    actor = _actor(nurse)
    draft = record(patient)
    saved = labs.add_lab_results(actor, patient.id, [_lab()], record_id=draft.id)
    assert saved[0].record_id == draft.id
    with pytest.raises(labs.LabError, match="another patient"):
        labs.add_lab_results(actor, patient.id, [_lab()], record_id=record(make_patient(tenant)).id)
    with pytest.raises(labs.LabError, match="finalized"):
        labs.add_lab_results(actor, patient.id, [_lab()], record_id=record(patient, "finalized").id)
    with pytest.raises(LookupError):
        other = make_tenant()
        labs.add_lab_results(actor, patient.id, [_lab()], record_id=record(make_patient(other)).id)
    with pytest.raises(PermissionError):
        labs.add_lab_results(_actor(make_user(tenant, "coach")), patient.id, [_lab()])
    assert len(_stored(patient)) == 1


# --- CSV import ----------------------------------------------------------------------------------------


def test_csv_preview_lists_rows_and_row_by_row_errors_and_saves_nothing(client, clinic):
    _, _, patient = clinic
    text = HEADER + (
        "718-7,Hemoglobin,13.5,g/dL,12,15.5,2025-03-14 09:30\n"  # row 2: fine
        "718-7,Hemoglobin,abc,g/dL,12,15.5,2025-03-14\n"  # row 3: not a number
        "2160-0,,1.4,,0.6,1.2,2025-13-01\n"  # row 4: bad date
        "9999-9,,5,,,,2025-03-14\n"  # row 5: no name, unknown code
    )
    response = _upload(client, patient, text)
    assert response.status_code == 422
    page = html.unescape(response.get_data(as_text=True))
    assert "row 3: value 'abc' is not a number and the test has a numeric reference range" in page
    assert "row 4: observed time '2025-13-01' is not a date like 2025-03-14 or 2025-03-14 09:30" in page
    assert "row 5: name or a known LOINC code is required" in page
    assert "Row\xa02" in page and "13.5" in page  # the good row is listed (Row&nbsp;2)
    assert 'name="csv_text"' not in page  # no confirm while there are errors
    assert _stored(patient) == []


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "the file is empty"),
        (" \n\n", "the file is empty"),
        (HEADER, "row 1: the file has a header but no lab rows under it"),
        ("code,name,value,unit,ref_low,ref_high,observed_at,comment\n718-7,,1,,,,2025-03-14,x\n",
         "row 1: unknown column 'comment'"),
        ("code,unit\n718-7,g/dL\n", "row 1: the header has no column 'value', 'observed_at'"),
        ("value,observed_at\n1,2025-03-14\n", "the header has no column 'code or name'"),
        (HEADER + "718-7,,1,,,,2025-03-14,extra\n", "row 2: 8 values but the header names 7 columns"),
        (HEADER + "718-7,,1,,,,2025-03-14\n" * (labs.CSV_MAX_ROWS + 1), "the file has more than 5,000 rows"),
    ],
)  # fmt: skip
def test_csv_file_problems_are_named(client, clinic, text, message):
    _, _, patient = clinic
    response = _upload(client, patient, text)
    assert response.status_code == 422
    assert message in html.unescape(response.get_data(as_text=True))
    assert _stored(patient) == []


def test_csv_accepts_a_bom_semicolons_any_header_case_and_column_order():
    text = "\ufeffObserved_At; VALUE;Code;Ref_Low;ref_high\r\n2025-03-14;9.1;718-7;12;15.5\r\n\r\n"
    preview = parse_lab_csv(text)
    assert preview.errors == []
    assert [(r.name, r.value_numeric, r.flag) for r in preview.rows] == [("Hemoglobin", 9.1, "L")]
    assert preview.lines == [2]


def test_a_file_too_large_is_413_and_not_utf8_is_422(client, clinic):
    _, _, patient = clinic
    big = HEADER + "x" * labs.CSV_MAX_BYTES
    response = _upload(client, patient, big)
    assert response.status_code == 413
    assert "larger than 2 MB" in response.get_data(as_text=True)
    response = _upload(client, patient, (HEADER + ",Glukose \xfc,1,,,,2025-03-14\n").encode("latin-1"))
    assert response.status_code == 422
    assert "not UTF-8" in response.get_data(as_text=True)
    response = client.post(
        f"/patients/{patient.id}/labs/import", data={"step": "preview"}, content_type="multipart/form-data"
    )
    assert response.status_code == 422 and "Choose a CSV file" in response.get_data(as_text=True)


def test_confirm_saves_exactly_the_previewed_rows(client, clinic):
    _, _, patient = clinic
    text = HEADER + (
        "718-7,Hemoglobin,13.5,g/dL,12,15.5,2025-03-14 09:30\n"
        ",Urine culture,No growth,,,,2025-03-14\n"
        '2345-7,"Glucose, fasting",140,mg/dL,70,99,2025-03-15 07:00\n'
    )
    preview = _upload(client, patient, text)
    assert preview.status_code == 200
    page = preview.get_data(as_text=True)
    assert "Save 3 results" in page and "Nothing is saved yet." in page
    assert _stored(patient) == []
    posted_back = html.unescape(CSV_TEXT.search(page).group(1))
    assert posted_back == text
    response = _confirm(client, patient, preview)
    assert response.status_code == 303
    expected = parse_lab_csv(text, zone="America/Chicago").rows
    stored = _stored(patient)
    assert [
        (r.code, r.name, r.display_value, r.unit, r.ref_low, r.ref_high, r.flag, r.observed_at)
        for r in stored
    ] == [(e.code, e.name, e.value, e.unit, e.ref_low, e.ref_high, e.flag, e.observed_at) for e in expected]
    assert [r.flag for r in stored] == ["N", None, "H"]
    (imported,) = _events("lab.import")
    assert re.fullmatch(r"[0-9a-f]{16}: 3 rows", imported.resource_id) and imported.patient_id == patient.id
    _assert_no_values_in_audit([imported])
    assert "3 lab results imported." in client.get(f"/patients/{patient.id}/labs").get_data(as_text=True)


def test_confirm_with_a_changed_file_that_has_errors_saves_nothing(client, clinic):
    _, _, patient = clinic
    preview = _upload(client, patient, HEADER + "718-7,,1,,,,2025-03-14\n")
    response = _confirm(
        client, patient, preview, HEADER + "718-7,,1,,,,2025-03-14\n718-7,,x,,1,2,2025-03-14\n"
    )
    assert response.status_code == 422
    assert "row 3: value" in html.unescape(response.get_data(as_text=True))
    assert _stored(patient) == [] and _events("lab.import") == []


def test_a_large_previewed_file_fits_through_the_confirm_form(client, clinic):
    _, _, patient = clinic
    # Larger than Flask's default 500 kB form field limit, within the 2 MB file limit.
    rows = 3_000
    text = HEADER + "".join(f",{'Panel ' + 'x' * 170} {n},{n},,,,2025-03-14\n" for n in range(rows))
    assert 500_000 < len(text.encode()) < labs.CSV_MAX_BYTES
    preview = _upload(client, patient, text)
    response = _post_multipart(
        client,
        f"/patients/{patient.id}/labs/import",
        {
            "step": "confirm",
            "csv_text": text.replace("\n", "\r\n"),
            "import_token": IMPORT_TOKEN.search(preview.get_data(as_text=True)).group(1),
        },
    )
    assert response.status_code == 303
    assert len(_stored(patient)) == rows


def test_a_confirm_sent_twice_imports_the_rows_once(client, clinic):
    _, _, patient = clinic
    text = HEADER + "718-7,,13.5,,12,15.5,2025-03-14\n2160-0,,1.1,,,,2025-03-14\n"
    preview = _upload(client, patient, text)
    first = _confirm(client, patient, preview)
    again = _confirm(client, patient, preview)  # a double click, or back and save again
    assert first.status_code == again.status_code == 303
    assert again.headers["Location"] == f"/patients/{patient.id}/labs"
    assert len(_stored(patient)) == 2
    assert len(_events("lab.import")) == 1
    page = client.get(f"/patients/{patient.id}/labs").get_data(as_text=True)
    assert "This file was already imported; nothing was saved again." in page

    # Uploading and previewing the file again gives a new token: a second import, made on purpose.
    assert _confirm(client, patient, _upload(client, patient, text)).status_code == 303
    assert len(_stored(patient)) == 4 and len(_events("lab.import")) == 2


def test_an_old_preview_sent_again_a_day_later_is_still_known_as_imported(client, clinic):
    _, _, patient = clinic
    preview = _upload(client, patient, HEADER + "718-7,,13.5,,12,15.5,2025-03-14\n")
    assert _confirm(client, patient, preview).status_code == 303
    with time_machine.travel(datetime.now(UTC) + timedelta(days=1), tick=False):
        login(client, clinic[1].email)  # the earlier sign-in has ended by then
        again = _confirm(client, patient, preview)
    assert again.status_code == 303 and len(_stored(patient)) == 1


def test_confirms_racing_with_the_same_token_import_once(app, clinic):
    # Real threads: several confirms of one preview reach the database at the same moment.
    _, nurse, patient = clinic
    text = HEADER + "718-7,,13.5,,12,15.5,2025-03-14\n"
    db.session.commit()
    # Plain values only: the threads must not touch the test's own session (its rows expire on commit).
    actor, patient_id = _actor(nurse), patient.id

    def confirm(_index: int) -> int:
        return len(labs.import_lab_csv(actor, patient_id, text, import_id="0123456789abcdef"))

    outcomes = parallel(6, app, confirm)
    assert outcomes.count(1) == 1, outcomes
    assert all(isinstance(outcome, labs.LabAlreadyImported) for outcome in outcomes if outcome != 1)
    db.session.expire_all()
    assert len(_stored(patient)) == 1 and len(_events("lab.import")) == 1
    # Another import id is another import.
    labs.import_lab_csv(_actor(nurse), patient.id, text, import_id="fedcba9876543210")
    assert len(_stored(patient)) == 2


@pytest.mark.parametrize(
    "token", ["", "not-a-token", "for-another-patient", "from-another-user", "other-key"]
)
def test_a_confirm_without_a_good_token_saves_nothing_and_offers_a_fresh_one(app, client, clinic, token):
    tenant, nurse, patient = clinic
    secret = app.secret_key
    tokens = {
        "": "",
        "not-a-token": "not-a-token",
        "for-another-patient": labs.issue_import_token(secret, make_patient(tenant).id, nurse.id),
        "from-another-user": labs.issue_import_token(secret, patient.id, make_user(tenant, "nurse").id),
        "other-key": labs.issue_import_token("another-secret-key", patient.id, nurse.id),
    }
    text = HEADER + "718-7,,13.5,,12,15.5,2025-03-14\n"
    response = client.post(
        f"/patients/{patient.id}/labs/import",
        data={"step": "confirm", "csv_text": text, "import_token": tokens[token]},
        content_type="multipart/form-data",
    )
    assert response.status_code == 422
    page = response.get_data(as_text=True)
    assert "This preview could not be checked. Upload the file again to import it." in page
    assert _stored(patient) == [] and _events("lab.import") == []
    # The file is shown again with a new token of its own, which works once.
    assert IMPORT_TOKEN.search(page).group(1) not in ("", tokens[token])
    assert _confirm(client, patient, response).status_code == 303
    assert len(_stored(patient)) == 1


def test_the_confirm_form_disables_its_button_once_sent(client, clinic):
    _, _, patient = clinic
    page = _upload(client, patient, HEADER + "718-7,,13.5,,12,15.5,2025-03-14\n").get_data(as_text=True)
    confirm_form = re.search(r"<form [^>]*>(?:(?!</form>).)*name=\"import_token\"", page, re.DOTALL).group(0)
    assert "data-disable-on-submit" in confirm_form


# --- the lab page --------------------------------------------------------------------------------------


def _seed(patient, user):
    actor = _actor(user)
    labs.add_lab_results(
        actor,
        patient.id,
        [
            _lab(value="11.0", when="2025-02-01 08:00", ref_low="12", ref_high="15.5"),
            _lab(value="14.2", when="2025-03-01 08:00", ref_low="12", ref_high="15.5"),
            _lab(
                value="16.1", when="2025-01-05 08:00", ref_low="12", ref_high="15.5"
            ),  # entered out of order
            _lab(code="2951-2", value="138", when="2025-03-01 08:00", ref_low="135", ref_high="145"),
            _lab(code="", name="Urine culture", value="No growth", when="2025-03-02 10:00"),
        ],
    )


def _flowsheet_rows(page: str) -> dict[str, list[str]]:
    """The flowsheet table's rows: test name -> the text of its day cells, newest day first."""
    table = page.split('class="lab-sheet-table"')[1].split("</table>")[0]
    rows = {}
    for row in re.findall(r"<tr(?: class=\"lab-open\")?>\s*<th scope=\"row\".*?</tr>", table, re.DOTALL):
        name = re.search(r'<span class="lab-name">(.*?)</span>', row).group(1)
        cells = re.findall(r'<td class="lab-cell">(.*?)</td>', row, re.DOTALL)
        rows[html.unescape(name)] = [" ".join(re.sub(r"<[^>]+>", " ", c).split()) for c in cells]
    return rows


def test_lab_page_is_a_flowsheet_tests_as_rows_days_newest_first_flags_written(client, clinic):
    _, nurse, patient = clinic
    _seed(patient, nurse)
    response = client.get(f"/patients/{patient.id}/labs")
    assert response.status_code == 200
    page = response.get_data(as_text=True)
    # Days in clinic time (America/Chicago), newest first: one column per day with a result.
    days = re.findall(r'<th scope="col" class="lab-day">(.*?) <span class="lab-year">(\d+)</span>', page)
    assert days == [("02 Mar", "2025"), ("01 Mar", "2025"), ("01 Feb", "2025"), ("05 Jan", "2025")]
    rows = _flowsheet_rows(page)
    # Flags are coloured and written (↑H / ↓L, and in words for screen readers).
    assert rows["Hemoglobin"] == ["· no result", "14.2", "11 ↓L (low)", "16.1 ↑H (high)"]
    assert rows["Sodium"] == ["· no result", "138", "· no result", "· no result"]
    assert rows["Urine culture"][0] == "No growth"
    # Rows by panel (liver, kidney and electrolytes, blood count, …), tests of no panel last.
    assert list(rows) == ["Sodium", "Hemoglobin", "Urine culture"]
    assert page.index(">Kidney and electrolytes</th>") < page.index(">Blood count</th>")
    assert page.index(">Blood count</th>") < page.index(">Other tests</th>")
    # On phones: a card per test with its latest value, flag and a sparkline.
    cards = page.split('class="lab-cards"')[1]
    assert cards.count('class="lab-card"') == 3 and cards.count('class="lab-spark"') == 1
    assert "<strong>14.2</strong> g/dL" in cards and "Normal" in cards
    # No chart is drawn until one is asked for.
    assert "lab-series" not in page and "<canvas" not in page
    assert " style=" not in page and "hx-on" not in page
    (viewed,) = _events("lab.view")
    assert viewed.patient_id == patient.id and viewed.changed_fields is None


def test_a_tests_chart_opens_on_demand_as_a_page_and_an_htmx_fragment(client, clinic):
    _, nurse, patient = clinic
    _seed(patient, nurse)
    url = f"/patients/{patient.id}/labs?chart=718-7"
    page = client.get(url).get_data(as_text=True)
    assert f'href="/patients/{patient.id}/labs?chart=718-7#lab-chart-panel"' in page
    data = json.loads(html.unescape(HIDDEN_SERIES.search(page).group(1)))
    assert data["timezone"] == "America/Chicago"
    (series,) = data["tests"]
    assert (series["name"], series["unit"], series["code"]) == ("Hemoglobin", "g/dL", "718-7")
    assert [point["y"] for point in series["points"]] == [16.1, 11.0, 14.2]
    assert [point["flag"] for point in series["points"]] == ["H", "L", "N"]
    assert series["points"][0]["low"] == 12 and series["points"][0]["high"] == 15.5
    assert f'id="lab-chart-{series["canvas"]}"' in page and "Trend of Hemoglobin" in page
    for tag in re.findall(r"<script[^>]*>", page):
        assert 'nonce="' in tag and "src=" in tag
    fragment = client.get(url, headers={"HX-Request": "true"})
    text = fragment.get_data(as_text=True)
    assert (
        fragment.status_code == 200
        and "<html" not in text
        and text.lstrip().startswith('<div id="flowsheet">')
    )
    assert "Trend of Hemoglobin" in text and 'id="lab-series" hidden' in text
    assert "HX-Request" in fragment.headers["Vary"] and 'id="add-results"' not in text
    # A test with one numeric value says so instead of drawing a line.
    one = client.get(f"/patients/{patient.id}/labs?chart=2951-2").get_data(as_text=True)
    assert "One numeric value so far" in one and "<canvas" not in one


def test_the_panel_filter_narrows_the_rows_and_unknown_names_answer_404(client, clinic):
    _, nurse, patient = clinic
    _seed(patient, nurse)
    page = client.get(f"/patients/{patient.id}/labs?panel=kidney").get_data(as_text=True)
    assert list(_flowsheet_rows(page)) == ["Sodium"]
    # Only days with a result of the panel are columns.
    assert page.count('class="lab-day"') == 1
    assert f'href="/patients/{patient.id}/labs?panel=kidney" data-hx-get=' in page
    assert 'aria-current="true">Kidney and electrolytes</a>' in page
    fragment = client.get(f"/patients/{patient.id}/labs?panel=blood", headers={"HX-Request": "true"})
    assert list(_flowsheet_rows(fragment.get_data(as_text=True))) == ["Hemoglobin"]
    # A panel the patient has no results in, or no such panel or test: 404.
    for query in ("panel=lipids", "panel=nonsense", "chart=0000-0"):
        assert client.get(f"/patients/{patient.id}/labs?{query}").status_code == 404


def test_older_days_are_a_link_away(client, clinic):
    _, nurse, patient = clinic
    rows = [_lab(value=str(10 + n), when=f"2025-01-{n + 1:02d} 08:00") for n in range(FLOWSHEET_COLUMNS + 3)]
    labs.add_lab_results(_actor(nurse), patient.id, rows)
    page = client.get(f"/patients/{patient.id}/labs").get_data(as_text=True)
    assert page.count('class="lab-day"') == FLOWSHEET_COLUMNS
    assert _flowsheet_rows(page)["Hemoglobin"][0] == str(10 + FLOWSHEET_COLUMNS + 2)
    assert f"labs?offset={FLOWSHEET_COLUMNS}" in page and "Newer results" not in page
    older = client.get(f"/patients/{patient.id}/labs?offset={FLOWSHEET_COLUMNS}").get_data(as_text=True)
    assert _flowsheet_rows(older)["Hemoglobin"] == ["12", "11", "10"]
    assert "← Newer results" in older and "Older results" not in older


@pytest.mark.parametrize(
    ("ucum", "shown"),
    [
        ("10*3/uL", "10³/µL"),
        ("10*9/L", "10⁹/L"),
        ("umol/L", "µmol/L"),
        ("ug/dL", "µg/dL"),
        ("uIU/mL", "µIU/mL"),
        ("{INR}", ""),
        ("mm[Hg]", "mmHg"),
        ("mL/min/{1.73_m2}", "mL/min/1.73 m²"),
        ("mg/dL", "mg/dL"),
        ("units/L", "units/L"),
        (None, ""),
    ],
)
def test_units_are_shown_as_people_write_them(ucum, shown):
    assert labs.display_unit(ucum) == shown


def test_the_lab_and_patient_pages_show_platelets_in_thousands_per_microlitre(client, clinic):
    _, nurse, patient = clinic
    labs.add_lab_results(_actor(nurse), patient.id, [_lab(code="777-3", value="150", when="2025-03-01")])
    for url in (f"/patients/{patient.id}/labs", f"/patients/{patient.id}"):  # the labs and the key labs
        page = client.get(url).get_data(as_text=True)
        assert "10³/µL" in page and "10*3/uL" not in page, url


def test_the_record_page_shows_lab_units_as_people_write_them(client, clinic):
    tenant, nurse, patient = clinic
    doctor = make_user(tenant, "doctor")
    draft = MedicalRecord(
        tenant_id=tenant.id, patient_id=patient.id, doctor_id=doctor.id, author_id=doctor.id,
        visit_at=datetime(2025, 3, 14, 9), chief_complaint="Check-up",
    )  # fmt: skip
    db.session.add(draft)
    db.session.commit()
    labs.add_lab_results(_actor(nurse), patient.id, [_lab(code="777-3", value="150")], record_id=draft.id)
    page = client.get(f"/records/{draft.id}").get_data(as_text=True)
    assert "150 10³/µL" in page and "10*3/uL" not in page


def test_chart_data_cannot_break_out_of_its_element(client, clinic):
    _, nurse, patient = clinic
    name = "</div><script>alert(1)</script>"
    labs.add_lab_results(
        _actor(nurse), patient.id, [_lab(code="", name=name, value=v, when=f"2025-03-1{v}") for v in "12"]
    )
    key = f"name:{name.casefold()}"
    page = client.get(f"/patients/{patient.id}/labs", query_string={"chart": key}).get_data(as_text=True)
    assert "<script>alert(1)" not in page
    assert json.loads(html.unescape(HIDDEN_SERIES.search(page).group(1)))["tests"][0]["name"] == name


def test_lab_overview_reads_the_labs_in_one_query(app, clinic):
    _, nurse, patient = clinic
    _seed(patient, nurse)
    statements = []

    def remember(_conn, _cursor, statement, *_args):
        statements.append(statement)

    engine = db.engine
    event.listen(engine, "before_cursor_execute", remember)
    try:
        overview = labs.lab_overview(_actor(nurse), patient.id)
        names = [test.name for test in overview.tests]
        total = sum(len(test.results) for test in overview.tests)
    finally:
        event.remove(engine, "before_cursor_execute", remember)
    assert names == ["Hemoglobin", "Sodium", "Urine culture"] and total == 5
    assert sum("FROM lab_results" in s for s in statements) == 1


def test_an_empty_lab_page_offers_the_ways_in(client, clinic):
    _, _, patient = clinic
    page = client.get(f"/patients/{patient.id}/labs").get_data(as_text=True)
    assert "No lab results yet." in page and "Import CSV" in page and 'id="add-results"' in page
    assert "lab-series" not in page


# --- who may ---------------------------------------------------------------------------------------------


def test_another_clinics_patient_answers_404(client, clinic):  # clinic: a nurse is signed in
    other_tenant = make_tenant()
    outsider = make_patient(other_tenant, last_name="Elsewhere")
    labs.add_lab_results(_actor(make_user(other_tenant, "doctor")), outsider.id, [_lab()])
    base = f"/patients/{outsider.id}/labs"
    for response in (
        client.get(base),
        client.get(f"{base}/import"),
        client.post(f"{base}/add", data=_form({"code": "718-7", "value": "1"}, shared_time="2025-03-14")),
        client.post(f"{base}/add", data=_form({"code": "718-7", "value": "abc", "ref_low": "1"})),
        _upload(client, outsider, HEADER + "718-7,,1,,,,2025-03-14\n"),
        client.post(
            f"{base}/import", data={"step": "confirm", "csv_text": HEADER + "718-7,,1,,,,2025-03-14\n"}
        ),
    ):
        assert response.status_code == 404
        assert b"Elsewhere" not in response.data
    assert len(_stored(outsider)) == 1


@pytest.mark.parametrize("role", ["front_desk", "patient"])
def test_front_desk_and_patients_see_no_lab_pages(app, client, role):
    tenant = make_tenant()
    patient = make_patient(tenant)
    extra = {"patient_id": patient.id, "email": patient.email} if role == "patient" else {}
    login(client, make_user(tenant, role, **extra).email)
    base = f"/patients/{patient.id}/labs"
    assert client.get(base).status_code == 403
    assert client.get(f"{base}/import").status_code == 403
    assert client.post(f"{base}/add", data=_form({"code": "718-7", "value": "1"})).status_code == 403
    assert _upload(client, patient, HEADER + "718-7,,1,,,,2025-03-14\n").status_code == 403


def test_coaches_read_labs_but_cannot_add_or_import(app, client):
    tenant = make_tenant()
    patient = make_patient(tenant)
    _seed(patient, make_user(tenant, "doctor"))
    login(client, make_user(tenant, "coach").email)
    base = f"/patients/{patient.id}/labs"
    page = client.get(base)
    assert page.status_code == 200
    body = page.get_data(as_text=True)
    assert "Hemoglobin" in body and "Import CSV" not in body and 'id="add-results"' not in body
    assert client.get(f"{base}/import").status_code == 403
    assert _upload(client, patient, HEADER + "718-7,,1,,,,2025-03-14\n").status_code == 403
    assert client.post(f"{base}/add", data=_form({"code": "718-7", "value": "1"})).status_code == 403
    assert len(_stored(patient)) == 5
