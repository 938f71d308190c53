"""The .ics of an appointment, parsed back with icalendar: one stable UID, SEQUENCE raised on every change,
METHOD REQUEST or CANCEL, what the patient needs to turn up, and nothing clinical."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from icalendar import Calendar

from healthcrm.extensions import db
from healthcrm.scheduling import booking
from healthcrm.scheduling.ics import CANCEL, REQUEST, appointment_calendar
from tests.scheduling.scheduling_data import MONDAY_8AM, at, make_clinic, utc

TUESDAY_10 = utc(2031, 1, 7, 9, 0)  # 10:00 in Berlin
WEDNESDAY_11 = utc(2031, 1, 8, 10, 0)
NOTE = "My left knee hurts since the fall"
ADDRESS = "Lindenstraße 5, 10115 Berlin"


def parse(data: bytes):
    calendar = Calendar.from_ical(data)
    (event,) = calendar.walk("VEVENT")
    return calendar, event


@pytest.fixture
def clinic(app):
    clinic = make_clinic()
    clinic.tenant.address = ADDRESS
    db.session.commit()
    return clinic


def _book(clinic, kind, starts_at=TUESDAY_10):
    with at(MONDAY_8AM):
        return booking.book(
            clinic.actor(clinic.desk), clinic.patient.id, kind.id, clinic.doctor.id, starts_at, note=NOTE
        )


def test_a_video_visit_has_its_link_preparation_and_phone_and_no_note(clinic):
    appointment = _book(clinic, clinic.video)
    with at(MONDAY_8AM):
        calendar, event = parse(appointment_calendar(clinic.tenant, appointment))
    assert str(calendar["version"]) == "2.0"
    assert str(calendar["method"]) == REQUEST
    assert "HealthCRM" in str(calendar["prodid"])
    assert str(event["uid"]) == appointment.uid
    assert int(event["sequence"]) == 0
    assert event.decoded("dtstart") == datetime(2031, 1, 7, 9, 0, tzinfo=UTC)
    assert event.decoded("dtend") == datetime(2031, 1, 7, 9, 30, tzinfo=UTC)
    assert event.decoded("dtstamp") == MONDAY_8AM
    assert str(event["summary"]) == f"Video follow-up at {clinic.tenant.name}"
    assert str(event["location"]) == "https://video.example.test/room/lindenhof"
    assert str(event["status"]) == "CONFIRMED"
    description = str(event["description"])
    assert "Find a quiet room and have your medication list at hand." in description
    assert "https://video.example.test/room/lindenhof" in description
    assert "+49 30 1234567" in description
    assert str(event["organizer"]) == "mailto:no-reply@healthcrm.local"
    assert event["organizer"].params["cn"] == clinic.tenant.name
    # Nothing the patient wrote, nothing about their health, not even their name.
    text = appointment_calendar(clinic.tenant, appointment).decode()
    assert "knee" not in text and "Lenz" not in text and "Mara" not in text


def test_an_in_person_visit_is_at_the_clinics_address_without_a_video_link(clinic):
    appointment = _book(clinic, clinic.checkup)
    _calendar, event = parse(appointment_calendar(clinic.tenant, appointment))
    assert str(event["location"]) == ADDRESS
    assert "video" not in str(event["description"]).lower()
    assert str(event["summary"]) == f"Check-up at {clinic.tenant.name}"


def test_a_reschedule_keeps_the_uid_and_raises_the_sequence_and_a_cancel_removes_it(clinic):
    appointment = _book(clinic, clinic.video)
    _calendar, first = parse(appointment_calendar(clinic.tenant, appointment))
    with at(MONDAY_8AM):
        moved = booking.reschedule(clinic.actor(clinic.desk), appointment.id, WEDNESDAY_11)
    _calendar, second = parse(appointment_calendar(clinic.tenant, moved))
    assert str(second["uid"]) == str(first["uid"])
    assert int(second["sequence"]) > int(first["sequence"])
    assert second.decoded("dtstart") == datetime(2031, 1, 8, 10, 0, tzinfo=UTC)

    with at(MONDAY_8AM):
        cancelled = booking.cancel(clinic.actor(clinic.desk), appointment.id, "Clinic closed")
    calendar, third = parse(appointment_calendar(clinic.tenant, cancelled, CANCEL))
    assert str(calendar["method"]) == CANCEL
    assert str(third["uid"]) == str(first["uid"])
    assert int(third["sequence"]) > int(second["sequence"])
    assert str(third["status"]) == "CANCELLED"


def test_an_unknown_method_is_refused(clinic):
    appointment = _book(clinic, clinic.video)
    with pytest.raises(ValueError, match="PUBLISH"):
        appointment_calendar(clinic.tenant, appointment, "PUBLISH")
