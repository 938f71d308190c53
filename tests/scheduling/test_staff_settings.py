"""Scheduling settings (appointment types, closures, the clinic's reminders and holds), providers' hours and
exceptions, and staff booking (quick picks, "this time was just taken", overbooking with a reason)."""

from __future__ import annotations

from sqlalchemy import func, select

from healthcrm.audit.models import AuditEvent
from healthcrm.extensions import db
from healthcrm.scheduling import booking
from healthcrm.scheduling.models import (
    AppointmentType,
    AvailabilityException,
    ClinicClosure,
    SchedulingSettings,
    WeeklyHours,
)
from tests.factories import login
from tests.scheduling.scheduling_data import MONDAY_8AM, at, make_clinic, utc

TUESDAY = "2031-01-07"
TYPE_FORM = {
    "name": "Long consultation",
    "duration_minutes": "45",
    "mode": "in_person",
    "buffer_before_minutes": "0",
    "buffer_after_minutes": "10",
    "patient_bookable": "1",
    "min_notice_minutes": "60",
    "horizon_days": "30",
    "reschedule_cutoff_minutes": "720",
    "cancel_cutoff_minutes": "1440",
    "task_pool_role": "nurse",
    "preparation": "Bring your last lab results.",
}


def _count(model, *where) -> int:
    return db.session.scalar(select(func.count()).select_from(model).where(*where))


def _signed_in(client, user):
    with at(MONDAY_8AM):
        login(client, user.email)


def test_settings_page_lists_the_types_and_is_for_admins_only(client):
    clinic = make_clinic()
    _signed_in(client, clinic.admin)
    with at(MONDAY_8AM):
        page = client.get("/schedule/settings")
    html = page.get_data(as_text=True)
    assert page.status_code == 200 and "Video follow-up" in html and "Check-up" in html
    client2 = client.application.test_client()
    _signed_in(client2, clinic.desk)
    with at(MONDAY_8AM):
        assert client2.get("/schedule/settings").status_code == 403


def test_add_edit_and_deactivate_a_type_audited(client):
    clinic = make_clinic()
    _signed_in(client, clinic.admin)
    with at(MONDAY_8AM):
        assert client.post("/schedule/settings/types", data=TYPE_FORM).status_code == 303
        row = db.session.scalar(select(AppointmentType).where(AppointmentType.name == "Long consultation"))
        assert row.duration_minutes == 45 and row.buffer_after_minutes == 10 and row.task_pool_role == "nurse"
        assert row.patient_bookable and row.active
        edited = {**TYPE_FORM, "duration_minutes": "50", "patient_bookable": ""}
        assert client.post(f"/schedule/settings/types/{row.id}", data=edited).status_code == 303
        assert (
            client.post(f"/schedule/settings/types/{row.id}/active", data={"active": "0"}).status_code == 303
        )
    db.session.refresh(row)
    assert row.duration_minutes == 50 and not row.patient_bookable and not row.active
    assert _count(AuditEvent, AuditEvent.action == "scheduling.settings") == 3
    # A deactivated type can no longer be booked.
    with at(MONDAY_8AM):
        try:
            booking.book(
                clinic.actor(clinic.desk), clinic.patient.id, row.id, clinic.doctor.id, utc(2031, 1, 7, 9)
            )
        except booking.SchedulingError as error:
            assert error.field == "type_id"
        else:
            raise AssertionError("a deactivated type was booked")


def test_type_validation_answers_422_in_place_and_changes_nothing(client):
    clinic = make_clinic()
    _signed_in(client, clinic.admin)
    cases = [
        ({"name": ""}, "Enter the name."),
        ({"name": "video follow-up"}, "already has a type of that name"),
        ({"duration_minutes": "0"}, "duration (minutes) must be between 5 and 480"),
        ({"duration_minutes": "abc"}, "as a whole number"),
        ({"mode": "video"}, "needs the video link"),
        ({"mode": "video", "video_link": "http://insecure.example"}, "must start with https://"),
        ({"buffer_after_minutes": "-5"}, "buffer after must be between"),
        ({"horizon_days": "0"}, "booking horizon (days) must be between 1 and 365"),
        ({"task_pool_role": "wizard"}, "Choose one of the listed roles"),
    ]
    with at(MONDAY_8AM):
        for change, message in cases:
            answer = client.post("/schedule/settings/types", data={**TYPE_FORM, **change})
            assert answer.status_code == 422, change
            assert message in answer.get_data(as_text=True), change
    assert _count(AppointmentType) == 2


def test_closures_and_clinic_settings(client):
    clinic = make_clinic()
    _signed_in(client, clinic.admin)
    with at(MONDAY_8AM):
        bad = client.post(
            "/schedule/settings/closures",
            data={"first_day": "2031-01-09", "last_day": "2031-01-08", "reason": "x"},
        )
        assert bad.status_code == 422 and "cannot be before the first day" in bad.get_data(as_text=True)
        no_reason = client.post("/schedule/settings/closures", data={"first_day": "2031-01-09", "reason": ""})
        assert no_reason.status_code == 422 and "Enter the reason." in no_reason.get_data(as_text=True)
        ok = client.post(
            "/schedule/settings/closures",
            data={"first_day": "2031-01-09", "last_day": "2031-01-10", "reason": "Inventory"},
        )
        assert ok.status_code == 303
        assert "Inventory" in client.get("/schedule/settings").get_data(as_text=True)
        bad_settings = client.post(
            "/schedule/settings/clinic", data={"hold_minutes": "0", "offer_minutes": "60"}
        )
        assert (
            bad_settings.status_code == 422
            and "hold time (minutes) must be between 1 and 60" in bad_settings.get_data(as_text=True)
        )
        saved = client.post("/schedule/settings/clinic", data={"hold_minutes": "15", "offer_minutes": "90"})
        assert saved.status_code == 303
    assert _count(ClinicClosure) == 1
    settings = db.session.scalar(select(SchedulingSettings))
    assert (settings.reminder_2h, settings.hold_minutes, settings.offer_minutes) == (False, 15, 90)
    closure = db.session.scalar(select(ClinicClosure))
    with at(MONDAY_8AM):
        assert client.post(f"/schedule/settings/closures/{closure.id}/delete", data={}).status_code == 303
    assert _count(ClinicClosure) == 0


def test_weekly_hours_several_intervals_and_overlaps_refused(client):
    clinic = make_clinic()
    _signed_in(client, clinic.doctor)
    url = f"/schedule/hours/{clinic.doctor.id}/week"
    with at(MONDAY_8AM):
        page = client.get("/schedule/hours")
        assert page.status_code == 200 and "Europe/Berlin" in page.get_data(as_text=True)
        overlap = client.post(
            url, data={"starts_1_0": "09:00", "ends_1_0": "12:00", "starts_1_1": "11:00", "ends_1_1": "13:00"}
        )
        assert overlap.status_code == 422
        assert "Tuesday: 09:00–12:00 and 11:00–13:00 overlap" in overlap.get_data(as_text=True)
        assert _count(WeeklyHours, WeeklyHours.provider_id == clinic.doctor.id) == 10  # unchanged
        reversed_ = client.post(url, data={"starts_0_0": "12:00", "ends_0_0": "09:00"})
        assert reversed_.status_code == 422 and "must end after it starts" in reversed_.get_data(as_text=True)
        saved = client.post(
            url, data={"starts_0_0": "08:00", "ends_0_0": "10:00", "starts_0_1": "15:00", "ends_0_1": "19:00"}
        )
        assert saved.status_code == 303
    rows = db.session.scalars(select(WeeklyHours).where(WeeklyHours.provider_id == clinic.doctor.id)).all()
    assert sorted((r.weekday, f"{r.starts:%H:%M}", f"{r.ends:%H:%M}") for r in rows) == [
        (0, "08:00", "10:00"),
        (0, "15:00", "19:00"),
    ]


def test_a_provider_edits_only_their_own_hours_an_admin_anyones(client):
    clinic = make_clinic()
    other = make_clinic("Elsewhere")
    _signed_in(client, clinic.nurse)
    with at(MONDAY_8AM):
        assert client.post(f"/schedule/hours/{clinic.doctor.id}/week", data={}).status_code == 403
        assert client.get(f"/schedule/hours?provider_id={clinic.doctor.id}").status_code == 403
    admin = client.application.test_client()
    _signed_in(admin, clinic.admin)
    with at(MONDAY_8AM):
        assert (
            admin.post(
                f"/schedule/hours/{clinic.nurse.id}/week", data={"starts_2_0": "10:00", "ends_2_0": "11:00"}
            ).status_code
            == 303
        )
        assert admin.post(f"/schedule/hours/{other.doctor.id}/week", data={}).status_code == 404
    desk = client.application.test_client()
    _signed_in(desk, clinic.desk)
    with at(MONDAY_8AM):
        assert desk.get("/schedule/hours").status_code == 403
    assert _count(WeeklyHours, WeeklyHours.provider_id == clinic.nurse.id) == 1
    assert _count(WeeklyHours, WeeklyHours.provider_id == other.doctor.id) == 10


def test_exceptions_time_off_and_extra_hours(client):
    clinic = make_clinic()
    _signed_in(client, clinic.doctor)
    url = f"/schedule/hours/{clinic.doctor.id}/exceptions"
    with at(MONDAY_8AM):
        assert client.post(url, data={"day": TUESDAY, "kind": "off", "note": "Training"}).status_code == 303
        again = client.post(url, data={"day": TUESDAY, "kind": "off", "starts": "09:00", "ends": "10:00"})
        assert again.status_code == 422 and "the whole day is off already" in again.get_data(as_text=True)
        no_times = client.post(url, data={"day": TUESDAY, "kind": "extra"})
        assert (
            no_times.status_code == 422
            and "Extra hours need a start and an end time" in no_times.get_data(as_text=True)
        )
        assert (
            client.post(
                url, data={"day": "2031-01-11", "kind": "extra", "starts": "09:00", "ends": "12:00"}
            ).status_code
            == 303
        )
        overlap = client.post(
            url, data={"day": "2031-01-11", "kind": "extra", "starts": "11:00", "ends": "13:00"}
        )
        assert overlap.status_code == 422 and "overlap" in overlap.get_data(as_text=True)
    assert _count(AvailabilityException) == 2


def test_staff_booking_shows_free_times_and_books_a_quick_pick(client):
    clinic = make_clinic()
    _signed_in(client, clinic.desk)
    query = (
        f"type_id={clinic.checkup.id}&provider_id={clinic.doctor.id}&date={TUESDAY}"
        f"&patient_id={clinic.patient.id}"
    )
    with at(MONDAY_8AM):
        search = client.get("/schedule/book?q=Lenz").get_data(as_text=True)
        assert "Mara Lenz" in search and f"patient_id={clinic.patient.id}" in search
        page = client.get(f"/schedule/book?{query}").get_data(as_text=True)
        assert f'value="{TUESDAY}T09:00@{clinic.doctor.id}"' in page and "Europe/Berlin" in page
        booked = client.post(
            "/schedule/book",
            data={
                "patient_id": clinic.patient.id,
                "type_id": clinic.checkup.id,
                "provider_id": clinic.doctor.id,
                "pick": f"{TUESDAY}T09:00@{clinic.doctor.id}",
                "note": "Knee",
            },
        )
    assert booked.status_code == 303
    row = db.session.get(booking.Appointment, int(booked.headers["Location"].rsplit("/", 1)[1]))
    assert row.starts_at == utc(2031, 1, 7, 8, 0) and row.patient_note == "Knee" and not row.overbooked


def test_a_taken_time_offers_alternatives_and_overbooking_needs_a_reason_and_permission(client):
    clinic = make_clinic()
    with at(MONDAY_8AM):
        first = booking.book(
            clinic.actor(clinic.desk),
            clinic.other_patient.id,
            clinic.checkup.id,
            clinic.doctor.id,
            utc(2031, 1, 7, 9),
        )
    form = {
        "patient_id": clinic.patient.id,
        "type_id": clinic.checkup.id,
        "provider_id": clinic.doctor.id,
        "date": TUESDAY,
        "time": "10:00",
    }
    _signed_in(client, clinic.desk)
    with at(MONDAY_8AM):
        taken = client.post("/schedule/book", data=form)
        html = taken.get_data(as_text=True)
        assert taken.status_code == 409
        assert "This time was just taken" in html and 'name="pick"' in html and "Overbook anyway" in html
        no_reason = client.post("/schedule/book", data={**form, "overbook": "1", "overbook_reason": " "})
        assert no_reason.status_code == 422 and "Say why" in no_reason.get_data(as_text=True)
        done = client.post("/schedule/book", data={**form, "overbook": "1", "overbook_reason": "Acute pain"})
        assert done.status_code == 303
    rows = db.session.scalars(select(booking.Appointment).where(booking.Appointment.id != first.id)).all()
    assert len(rows) == 1 and rows[0].overbooked and rows[0].overbook_reason == "Acute pain"
    assert _count(AuditEvent, AuditEvent.action == "appointment.overbook") == 1
    # A nurse books but may not overbook: the offer is not shown, and a forged post is refused.
    nurse = client.application.test_client()
    _signed_in(nurse, clinic.nurse)
    with at(MONDAY_8AM):
        nurse_taken = nurse.post("/schedule/book", data=form)
        assert nurse_taken.status_code == 409 and "Overbook anyway" not in nurse_taken.get_data(as_text=True)
        forged = nurse.post("/schedule/book", data={**form, "overbook": "1", "overbook_reason": "Because"})
        assert forged.status_code == 403
    assert _count(booking.Appointment) == 2
