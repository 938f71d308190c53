"""One appointment in the portal: reschedule (the same appointment, uid kept, sequence raised) and cancel
within the type's cut-offs, and past them the reason with the clinic's phone; another patient's or another
clinic's ids are 404 and change nothing; the home page and the timeline show the next appointment."""

from __future__ import annotations

import importlib.util
from datetime import timedelta

import pytest
from sqlalchemy import func, select

from healthcrm.audit.models import AuditEvent
from healthcrm.extensions import db
from healthcrm.scheduling import booking
from healthcrm.scheduling.models import BOOKED, CANCELLED, HELD, Appointment
from tests.factories import login
from tests.scheduling.scheduling_data import MONDAY_8AM, at, make_clinic, utc

TUESDAY_10 = utc(2031, 1, 7, 9, 0)  # 10:00 in Berlin
WEDNESDAY_10 = utc(2031, 1, 8, 9, 0)
ICS_READY = importlib.util.find_spec("healthcrm.scheduling.ics") is not None


def _sign_in(client, user):
    response = login(client, user.email)
    assert response.status_code in (302, 303), response.status_code


def _book(clinic, starts_at, *, kind=None, user=None, patient=None) -> Appointment:
    """A booking the patient made (hold, then confirm) at MONDAY_8AM."""
    actor = clinic.actor(user or clinic.user)
    patient_id = (patient or clinic.patient).id
    with at(MONDAY_8AM):
        hold = booking.hold_slot(actor, patient_id, (kind or clinic.video).id, clinic.doctor.id, starts_at)
        return booking.confirm_hold(actor, patient_id, hold.id)


def _audits(action: str) -> int:
    return db.session.scalar(select(func.count()).select_from(AuditEvent).where(AuditEvent.action == action))


def test_past_the_cut_off_the_page_says_why_with_the_phone_and_a_cancel_anyway_is_422(app, client):
    clinic = make_clinic()
    row = _book(clinic, TUESDAY_10)
    # Monday 11:00 Berlin: 23 hours before a video visit with 24-hour cut-offs.
    with at(MONDAY_8AM + timedelta(hours=3)):
        _sign_in(client, clinic.user)
        page = client.get(f"/portal/appointments/{row.id}")
        assert page.status_code == 200
        assert "cannot be moved or cancelled online within 24 hours of their start" in page.text
        assert 'href="tel:+49301234567"' in page.text
        assert "Cancel this appointment" not in page.text and ">Reschedule<" not in page.text
        assert _audits("appointment.view") == 1

        refused = client.post(f"/portal/appointments/{row.id}/cancel", data={"reason": "Busy"})
        assert refused.status_code == 422
        assert "within 24 hours" in refused.text and 'href="tel:+49301234567"' in refused.text
        moved = client.post(
            "/portal/appointments/hold",
            data={
                "type_id": clinic.video.id,
                "reschedules_id": row.id,
                "starts_at": WEDNESDAY_10.isoformat(),
            },
        )
        assert moved.status_code == 422 and "within 24 hours" in moved.text
        slots = client.get(f"/portal/appointments/{row.id}/reschedule")
        assert slots.status_code == 200 and 'name="starts_at"' not in slots.text
        assert 'href="tel:+49301234567"' in slots.text

        db.session.refresh(row)
        assert row.status == BOOKED and row.starts_at == TUESDAY_10 and row.sequence == 0
        assert _audits("appointment.cancel") == 0
        assert (
            db.session.scalar(select(func.count()).select_from(Appointment).where(Appointment.status == HELD))
            == 0
        )


def test_a_patient_cancels_within_the_rules_and_it_moves_to_the_history(app, client):
    clinic = make_clinic()
    row = _book(clinic, WEDNESDAY_10)
    with at(MONDAY_8AM):
        _sign_in(client, clinic.user)
        page = client.get(f"/portal/appointments/{row.id}")
        assert "Cancel this appointment" in page.text and ">Reschedule<" in page.text
        done = client.post(f"/portal/appointments/{row.id}/cancel", data={"reason": "Feeling better"})
        assert done.status_code == 303
        db.session.refresh(row)
        assert row.status == CANCELLED and row.cancel_reason == "Feeling better" and row.sequence == 1
        listing = client.get("/portal/appointments/")
        history = listing.text.split("Past appointments", 1)[1]
        assert "Cancelled" in history and "Wed 08 Jan 2031, 10:00" in history
        assert "You have no appointments booked." in listing.text
        # Cancelling again changes nothing more.
        assert client.post(f"/portal/appointments/{row.id}/cancel", data={}).status_code == 303
        assert _audits("appointment.cancel") == 1


def test_reschedule_keeps_the_appointment_and_its_uid_and_raises_the_sequence(app, client):
    clinic = make_clinic()
    row = _book(clinic, TUESDAY_10)
    uid = row.uid
    with at(MONDAY_8AM):
        _sign_in(client, clinic.user)
        slots = client.get(f"/portal/appointments/{row.id}/reschedule")
        assert slots.status_code == 200 and "Move your appointment" in slots.text
        assert f'name="reschedules_id" value="{row.id}"' in slots.text
        assert 'value="2031-01-08T09:00:00"' in slots.text
        held = client.post(
            "/portal/appointments/hold",
            data={
                "type_id": clinic.video.id,
                "provider_id": clinic.doctor.id,
                "reschedules_id": row.id,
                "starts_at": WEDNESDAY_10.isoformat(),
            },
        )
        assert held.status_code == 303
        hold_id = int(held.headers["Location"].rsplit("/", 1)[1])
        confirm = client.get(held.headers["Location"])
        assert "Confirm the new time" in confirm.text and "Instead of Tue 07 Jan 2031, 10:00" in confirm.text
        done = client.post(f"/portal/appointments/hold/{hold_id}/confirm", data={})
        assert done.status_code == 303 and done.headers["Location"].endswith(f"/portal/appointments/{row.id}")
        # A replayed confirm finds the move done: the same page, no second move.
        again = client.post(f"/portal/appointments/hold/{hold_id}/confirm", data={})
        assert again.status_code == 303 and again.headers["Location"] == done.headers["Location"]

        db.session.refresh(row)
        assert row.id == row.id and row.uid == uid and row.sequence == 1
        assert row.starts_at == WEDNESDAY_10 and row.status == BOOKED
        booked = select(func.count()).select_from(Appointment).where(Appointment.status == BOOKED)
        assert db.session.scalar(booked) == 1
        assert _audits("appointment.reschedule") == 1
        page = client.get(f"/portal/appointments/{row.id}")
        assert "Wed 08 Jan 2031, 10:00" in page.text


def test_another_patients_or_clinics_appointment_and_hold_are_404_and_nothing_changes(app, client):
    clinic = make_clinic()
    elsewhere = make_clinic("Seeblick Klinik")
    theirs = _book(clinic, TUESDAY_10, user=clinic.other_user, patient=clinic.other_patient)
    far = _book(elsewhere, TUESDAY_10)
    with at(MONDAY_8AM):
        their_hold = booking.hold_slot(
            clinic.actor(clinic.other_user),
            clinic.other_patient.id,
            clinic.video.id,
            clinic.nurse.id,
            WEDNESDAY_10,
        )
        _sign_in(client, clinic.user)
        for appointment_id in (theirs.id, far.id, their_hold.id, 999999):
            assert client.get(f"/portal/appointments/{appointment_id}").status_code == 404
            assert client.get(f"/portal/appointments/{appointment_id}/reschedule").status_code == 404
            assert client.get(f"/portal/appointments/{appointment_id}/calendar.ics").status_code == 404
            assert client.post(f"/portal/appointments/{appointment_id}/cancel", data={}).status_code == 404
        for hold_id in (their_hold.id, theirs.id, far.id):
            assert client.get(f"/portal/appointments/hold/{hold_id}").status_code == 404
            assert client.post(f"/portal/appointments/hold/{hold_id}/confirm", data={}).status_code == 404
            assert client.post(f"/portal/appointments/hold/{hold_id}/release", data={}).status_code == 404
        moving = client.post(
            "/portal/appointments/hold",
            data={
                "type_id": clinic.video.id,
                "reschedules_id": theirs.id,
                "starts_at": WEDNESDAY_10.isoformat(),
            },
        )
        assert moving.status_code == 404
        listing = client.get("/portal/appointments/")
        assert "You have no appointments booked." in listing.text
    for row in (theirs, far, their_hold):
        db.session.refresh(row)
    assert theirs.status == BOOKED and theirs.sequence == 0 and theirs.starts_at == TUESDAY_10
    assert far.status == BOOKED and far.sequence == 0
    assert their_hold.status == HELD
    assert _audits("appointment.cancel") == 0 and _audits("appointment.reschedule") == 0


def test_the_home_page_and_the_timeline_show_the_next_appointment(app, client):
    clinic = make_clinic()
    row = _book(clinic, TUESDAY_10)
    later = _book(clinic, WEDNESDAY_10, kind=clinic.checkup)
    with at(MONDAY_8AM):
        _sign_in(client, clinic.user)
        home = client.get("/portal")
        assert home.status_code == 200
        assert "Your next appointment: Video follow-up, Tue 07 Jan 2031, 10:00 (Europe/Berlin)" in home.text
        assert "Then: Check-up, Wed 08 Jan 2031, 10:00 (Europe/Berlin)" in home.text
        assert f'href="/portal/appointments/{row.id}"' in home.text
        assert "Book an appointment" in home.text
        assert "Appointment booked: Video follow-up" in home.text  # recent activity
        client.post(f"/portal/appointments/{later.id}/cancel", data={})
        timeline = client.get("/portal/timeline")
        assert timeline.status_code == 200
        assert "Appointment booked: Video follow-up" in timeline.text
        assert "Appointment cancelled: Check-up" in timeline.text
        home = client.get("/portal")
        assert "Then: Check-up" not in home.text


def test_the_other_patients_timeline_does_not_show_these_appointments(app, client):
    clinic = make_clinic()
    _book(clinic, TUESDAY_10)
    with at(MONDAY_8AM):
        _sign_in(client, clinic.other_user)
        assert "Video follow-up" not in client.get("/portal/timeline").text
        assert "Your next appointment" not in client.get("/portal").text


@pytest.mark.skipif(not ICS_READY, reason="healthcrm.scheduling.ics comes from the notices part of issue 12")
def test_the_calendar_file_of_an_appointment(app, client):
    from icalendar import Calendar

    clinic = make_clinic()
    row = _book(clinic, TUESDAY_10)
    with at(MONDAY_8AM):
        _sign_in(client, clinic.user)
        page = client.get(f"/portal/appointments/{row.id}")
        assert f"/portal/appointments/{row.id}/calendar.ics" in page.text
        response = client.get(f"/portal/appointments/{row.id}/calendar.ics")
        assert response.status_code == 200 and response.mimetype == "text/calendar"
        calendar = Calendar.from_ical(response.data)
        assert str(calendar["method"]) == "REQUEST"
        event = calendar.walk("VEVENT")[0]
        assert str(event["uid"]) == row.uid and int(event["sequence"]) == 0
        assert _audits("appointment.calendar") == 1
