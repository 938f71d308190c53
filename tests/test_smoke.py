from tests.factories import login, make_patient, make_tenant, make_user


def test_doctor_signs_in_and_sees_patients(client):
    tenant = make_tenant()
    doctor = make_user(tenant, "doctor")
    make_patient(tenant, last_name="Zephyr")
    response = login(client, doctor.email)
    assert response.status_code == 303
    page = client.get("/patients")
    assert page.status_code == 200
    assert "Zephyr" in page.get_data(as_text=True)
