"""Medical records for staff: write a draft, finalize it, correct it by addendum, find it again."""

from __future__ import annotations

import json
import re

import pytest
from sqlalchemy import event, select

from healthcrm.audit.models import AuditEvent
from healthcrm.extensions import db
from healthcrm.records.models import MedicalRecord
from tests.factories import login, make_patient, make_tenant, make_user

HX = {"HX-Request": "true"}


def _form(doctor_id: int, **changes) -> dict:
    data = {
        "doctor_id": str(doctor_id),
        "visit_at": "2026-11-20T09:30",
        "chief_complaint": "Fatigue and yellow eyes",
        "bp_systolic": "128", "bp_diastolic": "82", "pulse": "76", "temperature": "36.8",
        "respiratory_rate": "14", "spo2": "97", "weight": "82.5", "height": "178",
        "ascites": "slight", "encephalopathy": "none",
        "diagnoses-0-code": "K70.31", "diagnoses-0-primary": "y",
        "diagnoses-1-code": "E11.9", "diagnoses-1-notes": "diet controlled",
        "prescriptions-0-drug": "Spironolactone", "prescriptions-0-dose": "100 mg",
        "prescriptions-0-route": "oral",
        "prescriptions-0-frequency": "once daily", "prescriptions-0-duration": "30 days",
        "prescriptions-0-refills": "2",
        "treatment_plan": "Low-sodium diet; diuretic.", "notes": "Abstinent 3 months.",
        "follow_up_required": "y", "follow_up_date": "2026-12-20",
    }  # fmt: skip
    data.update(changes)
    return {key: value for key, value in data.items() if value is not None}


@pytest.fixture
def clinic(app):
    tenant = make_tenant()
    return {
        "tenant": tenant,
        "doctor": make_user(tenant, "doctor"),
        "nurse": make_user(tenant, "nurse"),
        "coach": make_user(tenant, "coach"),
        "front_desk": make_user(tenant, "front_desk"),
        "patient": make_patient(tenant, first_name="Liv", last_name="Hepburn"),
    }


def _create(client, clinic, **changes) -> MedicalRecord:
    response = client.post(
        f"/patients/{clinic['patient'].id}/records/new", data=_form(clinic["doctor"].id, **changes)
    )
    assert response.status_code == 303, response.get_data(as_text=True)[:2000]
    return db.session.scalars(select(MedicalRecord).order_by(MedicalRecord.id.desc())).first()


def test_doctor_writes_finalizes_and_amends_a_record(client, clinic):
    login(client, clinic["doctor"].email)
    record = _create(client, clinic)
    assert record.status == "draft" and record.bmi == 26.0
    assert [(d.code, d.is_primary) for d in record.diagnoses] == [("K70.31", True), ("E11.9", False)]
    assert record.diagnoses[0].name.startswith("Alcoholic cirrhosis of liver with ascites")
    assert record.prescriptions[0].refills == 2

    page = client.get(f"/records/{record.id}").get_data(as_text=True)
    assert "Draft" in page and "K70.31" in page and "Spironolactone" in page and "26.0" in page

    assert client.post(f"/records/{record.id}/finalize", data={}).status_code == 303
    db.session.expire_all()
    assert record.status == "finalized" and record.finalized_by_id == clinic["doctor"].id
    # Finalized records cannot change: the edit page sends you back, a direct post is refused.
    assert client.get(f"/records/{record.id}/edit").status_code == 303
    response = client.post(
        f"/records/{record.id}/edit", data=_form(clinic["doctor"].id, chief_complaint="Changed")
    )
    assert response.status_code == 303
    db.session.expire_all()
    assert record.chief_complaint == "Fatigue and yellow eyes"
    assert client.post(f"/records/{record.id}/delete", data={}).status_code == 303
    assert db.session.get(MedicalRecord, record.id) is not None

    assert "Not amended" in client.get(f"/records/{record.id}").get_data(as_text=True)
    response = client.post(f"/records/{record.id}/addenda", data={"text": "Bilirubin was 3.1, not 1.3."})
    assert response.status_code == 303
    page = client.get(f"/records/{record.id}").get_data(as_text=True)
    assert "Amended" in page and "Bilirubin was 3.1, not 1.3." in page
    actions = [
        e.action for e in db.session.scalars(select(AuditEvent).where(AuditEvent.resource_type == "record"))
    ]
    assert {"record.create", "record.view", "record.finalize", "record.addendum"} <= set(actions)


def test_changes_are_audited_with_field_names_only(client, clinic):
    login(client, clinic["nurse"].email)
    record = _create(client, clinic)
    client.post(
        f"/records/{record.id}/edit", data=_form(clinic["doctor"].id, pulse="90", notes="Seen again.")
    )
    [update] = db.session.scalars(select(AuditEvent).where(AuditEvent.action == "record.update")).all()
    assert json.loads(update.changed_fields) == ["notes", "pulse"]
    assert update.patient_id == clinic["patient"].id


def test_nurse_drafts_but_cannot_finalize(client, clinic):
    login(client, clinic["nurse"].email)
    record = _create(client, clinic)
    assert client.post(f"/records/{record.id}/finalize", data={}).status_code == 403
    assert "Finalize" not in client.get(f"/records/{record.id}").get_data(as_text=True)
    db.session.expire_all()
    assert record.status == "draft"


def test_front_desk_sees_no_clinical_content(client, clinic):
    login(client, clinic["doctor"].email)
    record = _create(client, clinic)
    client.post("/logout", data={})
    login(client, clinic["front_desk"].email)
    for url in (
        "/records",
        f"/records/{record.id}",
        f"/patients/{clinic['patient'].id}/records/new",
        "/records/icd10/0?q=cirrhosis",
        "/records/form-rows/diagnoses/2",
    ):
        response = client.get(url)
        assert response.status_code == 403, url
        assert b"Fatigue" not in response.data


def test_coach_reads_but_does_not_write(client, clinic):
    login(client, clinic["doctor"].email)
    record = _create(client, clinic)
    client.post("/logout", data={})
    login(client, clinic["coach"].email)
    assert client.get(f"/records/{record.id}").status_code == 200
    assert client.get(f"/records/{record.id}/edit").status_code == 403


def test_doctor_of_another_clinic_gets_404(client, clinic):
    login(client, clinic["doctor"].email)
    record = _create(client, clinic)
    client.post("/logout", data={})
    login(client, make_user(make_tenant(), "doctor").email)
    assert client.get(f"/records/{record.id}").status_code == 404
    assert client.post(f"/records/{record.id}/finalize", data={}).status_code == 404
    assert client.post(f"/records/{record.id}/addenda", data={"text": "x"}).status_code == 404
    assert "Hepburn" not in client.get("/records?q=hepburn").get_data(as_text=True)


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"chief_complaint": ""}, "This field is required."),
        ({"diagnoses-0-code": "XYZ.1"}, "is not an ICD-10-CM code"),
        ({"diagnoses-1-primary": "y"}, "Only one diagnosis can be primary."),
        ({"bp_diastolic": "140"}, "Diastolic pressure must be lower than systolic."),
        ({"spo2": "140"}, "SpO2 must be between 50 and 100."),
        ({"follow_up_date": ""}, "Enter the follow-up date."),
        ({"prescriptions-0-frequency": ""}, "Prescription 1: enter the dose and the frequency."),
        ({"visit_at": "yesterday"}, "Not a valid datetime value."),
    ],
)
def test_bad_input_gets_a_clear_message_and_saves_nothing(client, clinic, changes, message):
    login(client, clinic["doctor"].email)
    response = client.post(
        f"/patients/{clinic['patient'].id}/records/new", data=_form(clinic["doctor"].id, **changes)
    )
    assert response.status_code == 422
    assert message in response.get_data(as_text=True)
    assert db.session.scalar(select(MedicalRecord.id)) is None


def test_finalizing_needs_a_diagnosis(client, clinic):
    login(client, clinic["doctor"].email)
    record = _create(client, clinic, **{"diagnoses-0-code": "", "diagnoses-1-code": ""})
    page = client.post(f"/records/{record.id}/finalize", data={}, follow_redirects=True).get_data(
        as_text=True
    )
    assert "Add at least one diagnosis before finalizing." in page


def test_find_a_record_by_diagnosis_code_name_patient_and_filters(client, clinic):
    login(client, clinic["doctor"].email)
    _create(client, clinic)
    _create(
        client,
        clinic,
        **{
            "chief_complaint": "Cough",
            "diagnoses-0-code": "J20.9",
            "diagnoses-1-code": "",
            "follow_up_required": None,
            "follow_up_date": "",
        },
    )
    for query, expected in [
        ("K70.31", "Fatigue"),
        ("k7031", "Fatigue"),
        ("bronchitis", "Cough"),
        ("hepburn", "Cough"),
        ("yellow", "Fatigue"),
    ]:
        page = client.get("/records", query_string={"q": query}).get_data(as_text=True)
        assert expected in page, query
    assert "Cough" not in client.get("/records?q=K70.31").get_data(as_text=True)
    assert "of 2 records" in client.get("/records?status=draft").get_data(as_text=True)
    assert "No records match" in client.get("/records?status=finalized").get_data(as_text=True)
    page = client.get("/records?follow_up=1&to=2026-11-21").get_data(as_text=True)
    assert "No records match" not in page or "Fatigue" not in page
    partial = client.get("/records?q=cough", headers=HX).get_data(as_text=True)
    assert "<html" not in partial and "Cough" in partial


def test_list_page_query_count_does_not_grow_with_records(client, clinic):
    login(client, clinic["doctor"].email)
    for _ in range(3):
        _create(client, clinic)

    def count_queries() -> int:
        statements = []

        def before(conn, cursor, statement, *args):
            statements.append(statement)

        engine = db.engine
        event.listen(engine, "before_cursor_execute", before)
        try:
            assert client.get("/records").status_code == 200
        finally:
            event.remove(engine, "before_cursor_execute", before)
        return len(statements)

    few = count_queries()
    for _ in range(12):
        _create(client, clinic)
    assert count_queries() == few
    assert few <= 12


def test_icd10_typeahead_fragment(client, clinic):
    login(client, clinic["nurse"].email)
    response = client.get(
        "/records/icd10/0", query_string={"diagnoses-0-code": "alcoholic cirrhosis ascites"}, headers=HX
    )
    body = response.get_data(as_text=True)
    assert response.status_code == 200 and 'data-code="K70.31"' in body and "<html" not in body


# --- "Add …" rows -----------------------------------------------------------------------------------------


def _rows(page: str, section: str) -> list[int]:
    """The indexes of the section's rows on the page, in order."""
    return [int(n) for n in re.findall(rf'<div class="entry-row [a-z]+-row" id="{section}-(\d+)-row"', page)]


def test_a_new_record_starts_with_two_empty_rows_per_section_and_add_buttons(client, clinic):
    login(client, clinic["doctor"].email)
    page = client.get(f"/patients/{clinic['patient'].id}/records/new").get_data(as_text=True)
    for section, label, group in (
        ("diagnoses", "Add diagnosis", "Diagnosis"),
        ("prescriptions", "Add prescription", "Prescription"),
        ("labs", "Add lab result", "Lab result"),
    ):
        assert _rows(page, section) == [0, 1]
        assert f'aria-label="{group} 1"' in page and f'aria-label="{group} 2"' in page
        button = re.search(rf'<button [^>]*value="{section}"[^>]*>{label}</button>', page)
        assert button, section
        assert 'type="submit"' in button[0] and 'name="add_row"' in button[0]
        assert f'data-hx-get="/records/form-rows/{section}/2"' in button[0]
        assert f'data-hx-target="#{section}-rows"' in button[0] and 'data-hx-swap="beforeend"' in button[0]
    # Enter in a text box saves (the first submit button is the default one), it does not add a row.
    first_button = re.search(r"<button [^>]*>[^<]*</button>", page.split('class="card record-form"')[1])
    assert "Save draft" in first_button[0] and "add_row" not in first_button[0]


def test_add_row_without_javascript_keeps_what_was_typed_adds_a_row_and_saves_nothing(client, clinic):
    login(client, clinic["nurse"].email)
    url = f"/patients/{clinic['patient'].id}/records/new"
    response = client.post(url, data=_form(clinic["doctor"].id, add_row="diagnoses", chief_complaint=""))
    assert response.status_code == 200
    page = response.get_data(as_text=True)
    assert _rows(page, "diagnoses") == [0, 1, 2]
    assert _rows(page, "prescriptions") == [0, 1]
    assert 'value="K70.31"' in page and 'value="E11.9"' in page and 'value="diet controlled"' in page
    assert 'value="Spironolactone"' in page and "Low-sodium diet; diuretic." in page
    # The new row's code box takes the focus; nothing was checked, so no errors (the complaint is empty).
    assert re.search(r'<input [^>]*autofocus[^>]*id="diagnoses-2-code"', page)
    assert page.count("autofocus") == 1
    assert "Please correct" not in page
    assert 'data-hx-get="/records/form-rows/diagnoses/3"' in page
    assert db.session.scalar(select(MedicalRecord.id)) is None

    # The typed third diagnosis is saved with the others.
    response = client.post(url, data=_form(clinic["doctor"].id, **{"diagnoses-2-code": "R18.8"}))
    assert response.status_code == 303
    record = db.session.scalars(select(MedicalRecord)).one()
    assert [d.code for d in record.diagnoses] == ["K70.31", "E11.9", "R18.8"]


def test_add_row_on_the_edit_page_and_up_to_the_limit(client, clinic):
    login(client, clinic["doctor"].email)
    record = _create(client, clinic)
    url = f"/records/{record.id}/edit"
    prescriptions = {f"prescriptions-{n}-drug": "" for n in range(1, 7)}
    page = client.post(
        url, data=_form(clinic["doctor"].id, add_row="prescriptions", **prescriptions)
    ).get_data(as_text=True)
    assert _rows(page, "prescriptions") == list(range(8))
    assert "At most 8 prescriptions on a record." in page
    assert not re.search(r'<button [^>]*value="prescriptions"', page)
    # At the limit the button is gone; a post asking for more adds nothing and still saves nothing.
    prescriptions["prescriptions-7-drug"] = ""
    page = client.post(
        url, data=_form(clinic["doctor"].id, add_row="prescriptions", notes="Changed", **prescriptions)
    ).get_data(as_text=True)
    assert _rows(page, "prescriptions") == list(range(8))
    db.session.expire_all()
    assert record.notes == "Abstinent 3 months."


def test_add_row_fragment_is_one_row_and_the_button_for_the_next(client, clinic):
    login(client, clinic["nurse"].email)
    response = client.get("/records/form-rows/diagnoses/2", headers=HX)
    assert response.status_code == 200
    body = response.get_data(as_text=True)
    assert "<html" not in body and "<form" not in body
    assert _rows(body, "diagnoses") == [2]
    assert 'aria-label="Diagnosis 3"' in body and 'aria-controls="icd10-listbox-2"' in body
    assert re.search(r'<input [^>]*autofocus[^>]*id="diagnoses-2-code"', body)
    assert '<div class="add-row no-print" id="diagnoses-add" data-hx-swap-oob="true">' in body
    assert 'data-hx-get="/records/form-rows/diagnoses/3"' in body

    last = client.get("/records/form-rows/labs/19", headers=HX).get_data(as_text=True)
    assert _rows(last, "labs") == [19] and 'aria-label="Lab result 20"' in last
    assert "At most 20 lab results on one form" in last and "<button" not in last


@pytest.mark.parametrize(
    "url", ["/records/form-rows/labs/20", "/records/form-rows/diagnoses/8", "/records/form-rows/notes/0"]
)
def test_add_row_fragment_beyond_the_limits_is_not_found(client, clinic, url):
    login(client, clinic["nurse"].email)
    assert client.get(url, headers=HX).status_code == 404


def test_coach_cannot_ask_for_form_rows(client, clinic):
    login(client, clinic["coach"].email)
    assert client.get("/records/form-rows/diagnoses/2", headers=HX).status_code == 403


def test_edit_page_shows_every_saved_diagnosis_and_one_empty_row(client, clinic):
    login(client, clinic["doctor"].email)
    codes = ["K70.31", "E11.9", "R18.8", "I10", "E78.5"]
    record = _create(client, clinic, **{f"diagnoses-{n}-code": code for n, code in enumerate(codes)})
    page = client.get(f"/records/{record.id}/edit").get_data(as_text=True)
    assert _rows(page, "diagnoses") == [0, 1, 2, 3, 4, 5]
    assert all(f'value="{code}"' in page for code in codes)
    assert _rows(page, "prescriptions") == [0, 1]
    # Saving the page as shown keeps all five.
    data = _form(clinic["doctor"].id, **{f"diagnoses-{n}-code": code for n, code in enumerate(codes)})
    assert client.post(f"/records/{record.id}/edit", data=data).status_code == 303
    db.session.expire_all()
    assert [d.code for d in record.diagnoses] == codes


def test_patient_page_shows_clinical_content_only_to_clinical_roles(client, clinic):
    login(client, clinic["doctor"].email)
    _create(client, clinic)
    patient_url = f"/patients/{clinic['patient'].id}"
    page = client.get(patient_url).get_data(as_text=True)
    assert "Medical records" in page and "Fatigue and yellow eyes" in page and "MELD 3.0" in page
    response = client.post(
        f"{patient_url}/allergies",
        data={"substance": "Penicillin", "reaction": "Hives", "severity": "moderate", "status": "active"},
    )
    assert response.status_code == 303
    response = client.post(
        f"{patient_url}/immunizations",
        data={"vaccine": "Influenza", "given_on": "2026-10-01", "dose_number": "1", "lot": "FL123"},
    )
    assert response.status_code == 303
    page = client.get(patient_url).get_data(as_text=True)
    assert "Penicillin" in page and "Influenza" in page and "FL123" in page
    client.post("/logout", data={})
    login(client, clinic["front_desk"].email)
    page = client.get(patient_url).get_data(as_text=True)
    assert "Medical records" not in page and "Penicillin" not in page and "Fatigue" not in page
    assert (
        client.post(
            f"{patient_url}/allergies", data={"substance": "X", "severity": "mild", "status": "active"}
        ).status_code
        == 403
    )


def test_future_immunization_is_refused(client, clinic):
    login(client, clinic["nurse"].email)
    response = client.post(
        f"/patients/{clinic['patient'].id}/immunizations",
        data={"vaccine": "Influenza", "given_on": "2999-01-01"},
        follow_redirects=True,
    )
    assert "The date cannot be in the future." in response.get_data(as_text=True)


def test_labs_entered_on_the_record_form_belong_to_the_record(client, clinic):
    login(client, clinic["doctor"].email)
    record = _create(
        client,
        clinic,
        **{
            "labs-0-code": "1975-2",
            "labs-0-value": "2.4",
            "labs-0-ref_low": "0.1",
            "labs-0-ref_high": "1.2",
            "labs-0-observed_at": "2026-11-20 08:00",
            "labs-1-code": "2951-2",
            "labs-1-value": "131",
            "labs-1-ref_low": "135",
            "labs-1-ref_high": "145",
            "labs-1-observed_at": "2026-11-20 08:00",
        },
    )
    assert sorted((lab.code, lab.flag) for lab in record.labs) == [("1975-2", "H"), ("2951-2", "L")]
    assert all(lab.patient_id == clinic["patient"].id for lab in record.labs)
    page = client.get(f"/records/{record.id}").get_data(as_text=True)
    assert "Bilirubin" in page and "High" in page


def test_a_bad_lab_row_saves_neither_the_record_nor_any_lab(client, clinic):
    from healthcrm.records.models import LabResult

    login(client, clinic["doctor"].email)
    response = client.post(
        f"/patients/{clinic['patient'].id}/records/new",
        data=_form(
            clinic["doctor"].id,
            **{
                "labs-0-code": "1975-2",
                "labs-0-value": "abc",
                "labs-0-ref_low": "0.1",
                "labs-0-ref_high": "1.2",
                "labs-0-observed_at": "2026-11-20 08:00",
            },
        ),
    )
    assert response.status_code == 422
    assert "Lab results: row 1" in response.get_data(as_text=True)
    assert db.session.scalar(select(MedicalRecord.id)) is None
    assert db.session.scalar(select(LabResult.id)) is None


def test_the_visit_time_is_typed_and_shown_in_clinic_time(client, clinic):
    # The factory clinic is in America/Chicago (UTC-6 in November).
    login(client, clinic["doctor"].email)
    record = _create(client, clinic, visit_at="2026-11-20T09:30")
    assert record.visit_at.isoformat() == "2026-11-20T15:30:00"
    page = client.get(f"/records/{record.id}/edit").get_data(as_text=True)
    assert 'value="2026-11-20T09:30"' in page
    assert "20 Nov 2026, 09:30" in client.get(f"/records/{record.id}").get_data(as_text=True)


def test_date_filters_are_clinic_calendar_days(client, clinic):
    login(client, clinic["doctor"].email)
    _create(client, clinic, visit_at="2026-11-20T21:00")  # 03:00 UTC on the 21st
    assert "Fatigue" in client.get("/records?from=2026-11-20&to=2026-11-20").get_data(as_text=True)
    assert "No records match" in client.get("/records?from=2026-11-21").get_data(as_text=True)


def test_record_history_names_everyone_who_opened_it(client, clinic):
    login(client, clinic["doctor"].email)
    record = _create(client, clinic)
    client.post("/logout", data={})
    login(client, clinic["coach"].email)
    client.get(f"/records/{record.id}")
    page = client.get(f"/records/{record.id}").get_data(as_text=True)
    history = page[page.index("History of this record") :]
    assert clinic["coach"].full_name in history and clinic["doctor"].full_name in history
    assert "Viewed" in history and "Created" in history and "chief complaint" in history
