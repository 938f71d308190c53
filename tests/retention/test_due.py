"""When a patient's records are past their retention: adults, minors, patients without a visit, in the
clinic's own days."""

from __future__ import annotations

from datetime import UTC, date, datetime

import pytest
import time_machine

from healthcrm.extensions import db
from healthcrm.retention.services import due_date, due_patients
from healthcrm.scheduling.models import CANCELLED, COMPLETED
from tests.factories import make_patient, make_tenant, make_user
from tests.retention.factories import add_visit


def test_an_adults_records_are_due_the_years_after_the_last_visit():
    assert due_date(date(1970, 1, 1), date(2010, 5, 1), date(2000, 1, 1), 10, 28) == date(2020, 5, 1)


def test_a_minors_records_are_kept_until_the_later_of_that_and_the_age():
    # Five at the last visit: kept until 28, long after ten years from the visit.
    assert due_date(date(2005, 3, 1), date(2010, 6, 1), date(2005, 3, 2), 10, 28) == date(2033, 3, 1)
    # Seventeen at the last visit: ten years after (age 27) is earlier than 28, so 28 wins.
    assert due_date(date(1995, 8, 1), date(2012, 9, 1), date(2000, 1, 1), 10, 28) == date(2023, 8, 1)
    # Eighteen at the last visit: an adult, the age no longer counts.
    assert due_date(date(1995, 8, 1), date(2013, 8, 1), date(2000, 1, 1), 10, 40) == date(2023, 8, 1)


def test_without_a_visit_the_day_the_patient_was_added_counts():
    assert due_date(date(1970, 1, 1), None, date(2011, 2, 3), 10, 28) == date(2021, 2, 3)
    # A leap day moves to 28 February.
    assert due_date(date(1970, 1, 1), None, date(2012, 2, 29), 10, 28) == date(2022, 2, 28)


@pytest.fixture
def clinic(app):
    tenant = make_tenant(timezone="Pacific/Auckland")
    return tenant, make_user(tenant, "doctor")


def test_due_counts_the_last_visit_in_the_clinics_day(app, clinic):
    tenant, doctor = clinic
    patient = make_patient(tenant, date_of_birth=date(1960, 1, 1), created_at=datetime(2001, 1, 1))
    # 23:30 UTC on 30 June is 1 July in Auckland: the visit was on 1 July 2015, due 1 July 2025.
    add_visit(patient, doctor, datetime(2015, 6, 30, 23, 30))
    add_visit(patient, doctor, datetime(2012, 1, 1, 9, 0))  # an older visit does not count
    with time_machine.travel(datetime(2025, 6, 30, 11, 0, tzinfo=UTC), tick=False):  # 23:00 on 30 June there
        assert due_patients(tenant.id) == []
    with time_machine.travel(datetime(2025, 6, 30, 12, 30, tzinfo=UTC), tick=False):  # 00:30 on 1 July
        (due,) = due_patients(tenant.id)
    assert (due.patient.id, due.last_visit, due.due_since) == (patient.id, date(2015, 7, 1), date(2025, 7, 1))


def test_an_appointment_that_took_place_is_a_visit_and_a_cancelled_one_is_not(app, clinic):
    from healthcrm.scheduling.models import Appointment, AppointmentType

    tenant, doctor = clinic
    patient = make_patient(tenant, date_of_birth=date(1960, 1, 1), created_at=datetime(2001, 1, 1))
    add_visit(patient, doctor, datetime(2005, 1, 10, 9, 0))
    kind = AppointmentType(tenant_id=tenant.id, name="Visit", duration_minutes=30)
    db.session.add(kind)
    db.session.flush()

    def appointment(when: datetime, status: str) -> None:
        db.session.add(
            Appointment(
                tenant_id=tenant.id, patient_id=patient.id, provider_id=doctor.id, type_id=kind.id,
                starts_at=when, ends_at=when.replace(minute=30), blocked_from=when,
                blocked_until=when.replace(minute=30), status=status,
            )
        )  # fmt: skip

    appointment(datetime(2009, 4, 1, 9, 0), COMPLETED)
    appointment(datetime(2012, 4, 1, 9, 0), CANCELLED)
    db.session.commit()
    with time_machine.travel(datetime(2020, 1, 1, tzinfo=UTC), tick=False):
        (due,) = due_patients(tenant.id)
    assert due.last_visit == date(2009, 4, 1)  # NZ is ahead of UTC: 09:00 UTC is 21:00 the same day
    assert due.due_since == date(2019, 4, 1)


def test_a_patient_without_visits_is_due_from_when_they_were_added(app, clinic):
    tenant, _ = clinic
    patient = make_patient(tenant, date_of_birth=date(1960, 1, 1), created_at=datetime(2010, 3, 3, 0, 0))
    with time_machine.travel(datetime(2020, 3, 2, tzinfo=UTC), tick=False):  # 2 March 13:00 in Auckland
        assert due_patients(tenant.id) == []
    with time_machine.travel(datetime(2020, 3, 3, tzinfo=UTC), tick=False):
        (due,) = due_patients(tenant.id)
    assert (due.patient.id, due.last_visit, due.due_since) == (patient.id, None, date(2020, 3, 3))


def test_a_minor_stays_until_the_age_the_clinic_set(app, clinic):
    tenant, doctor = clinic
    child = make_patient(tenant, date_of_birth=date(2000, 6, 15), created_at=datetime(2001, 1, 1))
    add_visit(child, doctor, datetime(2004, 1, 1, 9, 0))  # age 3: ten years after is 2014, age 28 is 2028
    with time_machine.travel(datetime(2027, 1, 1, tzinfo=UTC), tick=False):
        assert due_patients(tenant.id) == []
    with time_machine.travel(datetime(2028, 6, 16, tzinfo=UTC), tick=False):
        (due,) = due_patients(tenant.id)
    assert due.due_since == date(2028, 6, 15)
