"""The staff patient list (search, filter, pagination, htmx fragments), profile and edit."""

from __future__ import annotations

import pytest

from healthcrm.extensions import db
from healthcrm.patients.models import Patient
from tests.factories import login, make_patient, make_tenant, make_user

HX = {"HX-Request": "true"}


@pytest.fixture
def clinic(app, client):
    tenant = make_tenant()
    doctor = make_user(tenant, "doctor")
    login(client, doctor.email)
    return tenant


def test_search_filters_by_name_mrn_email_and_phone(client, clinic):
    make_patient(
        clinic,
        first_name="Ada",
        last_name="Lovelace",
        mrn="RFC-000777",
        email="ada@example.com",
        phone="(312) 555-0177",
    )
    make_patient(clinic, first_name="Grace", last_name="Hopper")
    for query in ("lovelace", "ADA", "RFC-000777", "ada@example", "3125550177", "Lovelace, Ada"):
        page = client.get("/patients", query_string={"q": query}).get_data(as_text=True)
        assert "Lovelace" in page, query
        assert "Hopper" not in page, query


def test_list_pages_by_20_and_filters_by_care_stage(client, clinic):
    for n in range(25):
        make_patient(clinic, last_name=f"Family{n:02d}", care_stage="active" if n % 5 else "discharged")
    first = client.get("/patients").get_data(as_text=True)
    assert "Showing 1–20 of 25" in first and "Family19" in first and "Family20" not in first
    second = client.get("/patients?page=2").get_data(as_text=True)
    assert "Family20" in second and "Family19" not in second
    assert "Showing 21–25 of 25" in second
    discharged = client.get("/patients?stage=discharged").get_data(as_text=True)
    assert "of 5 patients" in discharged
    assert client.get("/patients?page=999").status_code == 200
    assert client.get("/patients?page=abc").status_code == 200


def test_htmx_search_returns_only_the_results_fragment(client, clinic):
    make_patient(clinic, last_name="Fragmented")
    full = client.get("/patients?q=frag")
    partial = client.get("/patients?q=frag", headers=HX)
    assert "<html" in full.get_data(as_text=True)
    body = partial.get_data(as_text=True)
    assert "<html" not in body and "Fragmented" in body and "<nav" not in body
    assert "HX-Request" in partial.headers["Vary"]
    # A boosted request wants the whole page.
    boosted = client.get("/patients?q=frag", headers={**HX, "HX-Boosted": "true"})
    assert "<html" in boosted.get_data(as_text=True)


def test_patients_of_other_clinics_are_never_listed(client, clinic):
    make_patient(make_tenant(), last_name="Outsider")
    assert "Outsider" not in client.get("/patients?q=outsider").get_data(as_text=True)


def _form(patient: Patient, **changes) -> dict:
    data = {
        "first_name": patient.first_name,
        "last_name": patient.last_name,
        "date_of_birth": patient.date_of_birth.isoformat(),
        "sex": patient.sex,
        "email": patient.email or "",
        "phone": patient.phone or "",
        "care_stage": patient.care_stage,
        "assigned_coach_id": "0",
        "emergency_contacts-0-name": "",
        "emergency_contacts-0-relationship": "",
        "emergency_contacts-0-phone": "",
        "emergency_contacts-1-name": "",
        "emergency_contacts-1-relationship": "",
        "emergency_contacts-1-phone": "",
    }
    data.update(changes)
    return data


def test_edit_profile_with_coach_and_emergency_contact(client, clinic):
    coach = make_user(clinic, "coach", full_name="Casey Coach")
    patient = make_patient(clinic)
    response = client.post(
        f"/patients/{patient.id}/edit",
        data=_form(
            patient,
            phone="555-0142",
            assigned_coach_id=str(coach.id),
            insurance_provider="Aetna",
            **{
                "emergency_contacts-0-name": "Sam Doe",
                "emergency_contacts-0-relationship": "Brother",
                "emergency_contacts-0-phone": "555-0111",
            },
        ),
    )
    assert response.status_code == 303
    page = client.get(f"/patients/{patient.id}").get_data(as_text=True)
    assert "555-0142" in page and "Casey Coach" in page and "Sam Doe" in page and "Aetna" in page
    assert "Profile saved." in page


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"first_name": ""}, "This field is required."),
        ({"date_of_birth": "2999-01-01"}, "Enter a date of birth in the past."),
        ({"date_of_birth": "not a date"}, "Not a valid date value."),
        ({"email": "not-an-email"}, "Invalid email address."),
        ({"care_stage": "bogus"}, "Not a valid choice."),
        (
            {"emergency_contacts-0-name": "No Phone"},
            "Each emergency contact needs a name and a phone number.",
        ),
    ],
)
def test_bad_input_gets_a_clear_message_and_changes_nothing(client, clinic, changes, message):
    patient = make_patient(clinic, first_name="Keep")
    response = client.post(f"/patients/{patient.id}/edit", data=_form(patient, **changes))
    assert response.status_code == 422
    assert message in response.get_data(as_text=True)
    db.session.expire_all()
    assert db.session.get(Patient, patient.id).first_name == "Keep"
    assert db.session.get(Patient, patient.id).emergency_contacts == []


def test_coach_from_another_clinic_is_refused(client, clinic):
    other_coach = make_user(make_tenant(), "coach")
    patient = make_patient(clinic)
    response = client.post(
        f"/patients/{patient.id}/edit", data=_form(patient, assigned_coach_id=str(other_coach.id))
    )
    assert response.status_code == 422


def test_add_a_patient_gets_an_mrn(client, clinic):
    response = client.post(
        "/patients/new",
        data={
            "first_name": "New",
            "last_name": "Person",
            "date_of_birth": "1990-05-06",
            "sex": "male",
            "care_stage": "new",
            "assigned_coach_id": "0",
        },
    )
    assert response.status_code == 303
    patient = db.session.scalar(db.select(Patient).where(Patient.last_name == "Person"))
    assert patient.mrn.startswith("MRN-") and patient.tenant_id == clinic.id


def test_coaches_can_read_but_not_edit(app, client):
    tenant = make_tenant()
    patient = make_patient(tenant)
    login(client, make_user(tenant, "coach").email)
    assert client.get(f"/patients/{patient.id}").status_code == 200
    assert client.get(f"/patients/{patient.id}/edit").status_code == 403


# --- the profile: clinical summary first for clinicians ----------------------------------------------


def _summary_patient(tenant):
    from datetime import timedelta

    from healthcrm.clock import clinic_today
    from healthcrm.records.models import MedicalRecord
    from tests.sharing.factories import make_shared_patient

    doctor = make_user(tenant, "doctor", full_name="Dr. Ana Ruiz")
    patient = make_shared_patient(tenant, doctor)
    newest = db.session.query(MedicalRecord).filter_by(patient_id=patient.id, status="draft").one()
    newest.follow_up_required, newest.follow_up_date = (
        True,
        clinic_today(tenant.timezone) + timedelta(days=14),
    )
    db.session.commit()
    return patient, newest


def _ids(page: str) -> list[str]:
    import re

    return re.findall(r'\sid="([^"]+)"', page)


def test_clinicians_see_the_clinical_summary_before_the_patients_details(app, clinic):
    from tests.factories import login as sign_in

    patient, newest = _summary_patient(clinic)
    client = app.test_client()
    sign_in(client, make_user(clinic, "nurse").email)
    page = client.get(f"/patients/{patient.id}").get_data(as_text=True)
    order = [
        'id="clinical"',
        "Active problems",
        "Allergies",
        "Latest vital signs",
        "Next follow-up",
        "Key labs",
        "Liver scores",
        "Medical records",
        'id="details"',
        "Demographics",
        "Insurance",
        "Patient portal",
    ]
    assert [page.index(text) for text in order] == sorted(page.index(text) for text in order)
    summary = page.split('id="clinical"')[1].split('id="details"')[0]
    assert "K74.60</code> Unspecified cirrhosis of liver" in summary and "K76.0" in summary
    assert "Penicillin" in summary and "128/82 mmHg" in summary and "76 /min" in summary
    assert newest.follow_up_date.strftime("%d %b %Y") in summary
    # Key labs: the latest value of each with its flag (bilirubin 2.1, above 1.2).
    bilirubin = summary.split(">Bilirubin, total</strong>")[1].split("</tr>")[0]
    assert "2.1 mg/dL" in bilirubin and "↑ High" in bilirubin
    assert "MELD 3.0" in summary


def test_front_desk_sees_the_details_and_no_clinical_summary(app, clinic):
    from tests.factories import login as sign_in

    patient, _ = _summary_patient(clinic)
    client = app.test_client()
    sign_in(client, make_user(clinic, "front_desk").email)
    page = client.get(f"/patients/{patient.id}").get_data(as_text=True)
    assert "Demographics" in page and "Insurance" in page and "Patient portal" in page
    for clinical in (
        "Clinical summary",
        "Active problems",
        "Key labs",
        "Penicillin",
        "K74.60",
        "MELD",
        "128/82",
    ):
        assert clinical not in page


def test_the_patient_page_has_no_duplicate_ids(client, clinic):
    patient, _ = _summary_patient(clinic)
    page = client.get(f"/patients/{patient.id}").get_data(as_text=True)
    ids = _ids(page)
    assert "Record an allergy" in page and "Record an immunization" in page and "Invite to the portal" in page
    assert len(ids) == len(set(ids)), sorted({i for i in ids if ids.count(i) > 1})
    assert page.count('name="csrf_token"') >= 4
