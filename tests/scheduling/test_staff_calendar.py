"""The staff calendar: the clinic's day, a provider's day and week (page and htmx fragment), one appointment
and its actions (check in, complete, no-show, cancel, move), "start a visit record", and the no-show count."""

from __future__ import annotations

from sqlalchemy import func, select

from healthcrm.audit.models import AuditEvent
from healthcrm.extensions import db
from healthcrm.records.models import MedicalRecord
from healthcrm.scheduling import booking
from healthcrm.scheduling.models import CANCELLED, CHECKED_IN, COMPLETED, NO_SHOW, Appointment
from tests.factories import login
from tests.scheduling.scheduling_data import MONDAY_8AM, at, make_clinic, utc

# Tuesday 7 January 2031 in Berlin (winter: UTC+1).
TUESDAY = "2031-01-07"
TUESDAY_10 = utc(2031, 1, 7, 9, 0)
TUESDAY_11 = utc(2031, 1, 7, 10, 0)


def _book(clinic, starts_at=TUESDAY_10, patient=None, provider=None, kind=None):
    with at(MONDAY_8AM):
        return booking.book(
            clinic.actor(clinic.desk),
            (patient or clinic.patient).id,
            (kind or clinic.checkup).id,
            (provider or clinic.doctor).id,
            starts_at,
        )


def _records(patient_id: int) -> int:
    return db.session.scalar(
        select(func.count()).select_from(MedicalRecord).where(MedicalRecord.patient_id == patient_id)
    )


def test_clinic_day_shows_a_column_per_provider_with_the_appointments_in_clinic_time(client):
    clinic = make_clinic()
    appt = _book(clinic)
    _book(clinic, TUESDAY_11, patient=clinic.other_patient, provider=clinic.nurse)
    with at(MONDAY_8AM):
        login(client, clinic.desk.email)
        page = client.get(f"/schedule?date={TUESDAY}")
    assert page.status_code == 200
    html = page.get_data(as_text=True)
    assert clinic.doctor.full_name in html and clinic.nurse.full_name in html
    assert "10:00–10:20" in html  # 09:00 UTC shown as Berlin time
    assert "Mara Lenz" in html and "Jonas Berg" in html and "Check-up" in html
    assert "Europe/Berlin" in html
    assert f"/schedule/appointments/{appt.id}" in html
    assert '<div id="calendar"' in html  # the whole page
    assert db.session.scalar(
        select(func.count()).select_from(AuditEvent).where(AuditEvent.action == "appointment.list")
    )


def test_calendar_navigation_answers_htmx_with_only_the_calendar_block(client):
    clinic = make_clinic()
    _book(clinic)
    with at(MONDAY_8AM):
        login(client, clinic.desk.email)
        fragment = client.get(f"/schedule?date={TUESDAY}", headers={"HX-Request": "true"})
        page = client.get("/schedule")
    html = fragment.get_data(as_text=True)
    assert fragment.status_code == 200 and "HX-Request" in fragment.headers.get("Vary", "")
    assert "<html" not in html and '<div id="calendar"' not in html
    assert "Mara Lenz" in html
    assert 'data-hx-get="/schedule?date=2031-01-08"' in html  # next day
    assert 'href="/schedule?date=2031-01-06"' in html  # previous day, as a plain link too
    # Without a date: the clinic's today (Monday in Berlin), the whole page.
    assert "Monday 06 January 2031" in page.get_data(as_text=True)


def test_provider_day_and_week_views(client):
    clinic = make_clinic()
    _book(clinic)
    cancelled = _book(clinic, TUESDAY_11, patient=clinic.other_patient)
    with at(MONDAY_8AM):
        booking.cancel(clinic.actor(clinic.desk), cancelled.id, "Called in sick")
    with at(MONDAY_8AM):
        login(client, clinic.doctor.email)
        day = client.get(f"/schedule/day?date={TUESDAY}&provider_id={clinic.doctor.id}")
        week = client.get(f"/schedule/week?date={TUESDAY}&provider_id={clinic.doctor.id}")
        week_fragment = client.get(
            f"/schedule/week?date={TUESDAY}&provider_id={clinic.doctor.id}", headers={"HX-Request": "true"}
        )
    assert day.status_code == 200 and week.status_code == 200
    day_html = day.get_data(as_text=True)
    assert "Mara Lenz" in day_html and "1 cancelled" in day_html
    week_html = week.get_data(as_text=True)
    assert "week of 06 Jan 2031" in week_html and "Tue 07 Jan" in week_html and "Sun 12 Jan" in week_html
    assert "Mara Lenz" in week_html
    assert "date=2031-01-14" in week_html  # next week
    assert "<html" not in week_fragment.get_data(as_text=True)


def test_another_clinics_appointment_and_provider_answer_404(client):
    clinic = make_clinic()
    other = make_clinic("Elsewhere")
    theirs = _book(other)
    with at(MONDAY_8AM):
        login(client, clinic.desk.email)
        assert client.get(f"/schedule/appointments/{theirs.id}").status_code == 404
        assert (
            client.post(f"/schedule/appointments/{theirs.id}/status", data={"action": "check_in"}).status_code
            == 404
        )
        assert (
            client.post(f"/schedule/appointments/{theirs.id}/cancel", data={"reason": "x"}).status_code == 404
        )
        assert client.get(f"/schedule/day?provider_id={other.doctor.id}").status_code == 404
    db.session.refresh(theirs)
    assert theirs.status == "booked"


def test_status_changes_happen_once_and_the_wrong_order_is_a_409_with_a_message(client):
    clinic = make_clinic()
    appt = _book(clinic)
    url = f"/schedule/appointments/{appt.id}/status"
    with at(MONDAY_8AM):
        login(client, clinic.desk.email)
        assert client.post(url, data={"action": "check_in"}).status_code == 303
        assert client.post(url, data={"action": "check_in"}).status_code == 303  # twice: once
        db.session.refresh(appt)
        assert appt.status == CHECKED_IN
        wrong = client.post(url, data={"action": "no_show"})
        assert wrong.status_code == 409
        assert "checked in; it cannot be changed that way" in wrong.get_data(as_text=True)
        assert client.post(url, data={"action": "complete"}).status_code == 303
    db.session.refresh(appt)
    assert appt.status == COMPLETED
    checks = db.session.scalar(
        select(func.count()).select_from(AuditEvent).where(AuditEvent.action == "appointment.check_in")
    )
    assert checks == 1


def test_no_shows_are_counted_on_the_appointment_page_and_the_day(client):
    clinic = make_clinic()
    missed = _book(clinic)
    with at(MONDAY_8AM):
        booking.change_status(clinic.actor(clinic.desk), missed.id, "no_show")
    later = _book(clinic, TUESDAY_11)
    with at(MONDAY_8AM):
        login(client, clinic.desk.email)
        page = client.get(f"/schedule/appointments/{later.id}").get_data(as_text=True)
        day = client.get(f"/schedule?date={TUESDAY}").get_data(as_text=True)
    assert '<dd class="no-show-count">1</dd>' in page
    assert "1 no-show" in day
    db.session.refresh(missed)
    assert missed.status == NO_SHOW


def test_cancel_with_a_reason_and_move_with_a_taken_time_offering_alternatives(client):
    clinic = make_clinic()
    appt = _book(clinic)
    blocker = _book(clinic, TUESDAY_11, patient=clinic.other_patient)
    with at(MONDAY_8AM):
        login(client, clinic.desk.email)
        taken = client.post(
            f"/schedule/appointments/{appt.id}/reschedule",
            data={"date": TUESDAY, "time": "11:00", "provider_id": clinic.doctor.id},
        )
        assert taken.status_code == 409
        html = taken.get_data(as_text=True)
        assert "This time was just taken" in html and 'name="pick"' in html
        moved = client.post(
            f"/schedule/appointments/{appt.id}/reschedule",
            data={"pick": f"{TUESDAY}T14:00@{clinic.doctor.id}"},
        )
        assert moved.status_code == 303
        assert (
            client.post(f"/schedule/appointments/{blocker.id}/cancel", data={"reason": "Ill"}).status_code
            == 303
        )
    db.session.refresh(appt)
    db.session.refresh(blocker)
    assert appt.starts_at == utc(2031, 1, 7, 13, 0) and appt.sequence == 1
    assert blocker.status == CANCELLED and blocker.cancel_reason == "Ill"


def test_starting_a_visit_record_twice_makes_one_record_and_opens_its_editor(client):
    clinic = make_clinic()
    appt = _book(clinic)
    desk = clinic.actor(clinic.desk)
    with at(MONDAY_8AM):
        booking.change_status(desk, appt.id, "complete")
    url = f"/schedule/appointments/{appt.id}/record"
    with at(MONDAY_8AM):
        login(client, clinic.doctor.email)
        page = client.get(f"/schedule/appointments/{appt.id}").get_data(as_text=True)
        assert "Start a visit record" in page
        first = client.post(url, data={})
        second = client.post(url, data={})
    assert first.status_code == second.status_code == 303
    assert first.headers["Location"] == second.headers["Location"]
    db.session.refresh(appt)
    assert appt.record_id and first.headers["Location"].endswith(f"/records/{appt.record_id}/edit")
    assert _records(clinic.patient.id) == 1
    record = db.session.get(MedicalRecord, appt.record_id)
    assert record.visit_at == appt.starts_at and record.doctor_id == clinic.doctor.id
    assert record.status == "draft"


def test_a_visit_record_needs_a_completed_appointment(client):
    clinic = make_clinic()
    appt = _book(clinic)
    with at(MONDAY_8AM):
        login(client, clinic.doctor.email)
        refused = client.post(f"/schedule/appointments/{appt.id}/record", data={})
    assert refused.status_code == 409 and "complete it first" in refused.get_data(as_text=True)
    assert _records(clinic.patient.id) == 0


def test_front_desk_cannot_start_a_visit_record(client):
    clinic = make_clinic()
    appt = _book(clinic)
    with at(MONDAY_8AM):
        booking.change_status(clinic.actor(clinic.desk), appt.id, "complete")
    with at(MONDAY_8AM):
        login(client, clinic.desk.email)
        page = client.get(f"/schedule/appointments/{appt.id}").get_data(as_text=True)
        refused = client.post(f"/schedule/appointments/{appt.id}/record", data={})
    assert "Start a visit record" not in page
    assert refused.status_code == 403
    assert _records(clinic.patient.id) == 0
    db.session.refresh(appt)
    assert appt.record_id is None


def test_a_coach_reads_the_calendar_but_has_no_desk_actions(client):
    clinic = make_clinic()
    appt = _book(clinic)
    with at(MONDAY_8AM):
        login(client, clinic.coach.email)
        page = client.get(f"/schedule/appointments/{appt.id}")
        refused = client.post(f"/schedule/appointments/{appt.id}/status", data={"action": "check_in"})
    assert page.status_code == 200 and "Check in" not in page.get_data(as_text=True)
    assert refused.status_code == 403
    assert db.session.scalar(select(Appointment.status).where(Appointment.id == appt.id)) == "booked"
