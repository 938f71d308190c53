"""Appointment emails: a confirmation, an update and a cancellation with their .ics, reminders 24 hours and
(per clinic) 2 hours before; each sent once, even when the job runs twice or two workers run it at once."""

from __future__ import annotations

from datetime import UTC, datetime
from email import policy
from email.parser import BytesParser

import pytest
from icalendar import Calendar
from sqlalchemy import func, select

from healthcrm.extensions import db
from healthcrm.scheduling import booking, notices
from healthcrm.scheduling.models import (
    NOTICE_CONFIRMATION,
    NOTICE_REMINDER_2H,
    NOTICE_REMINDER_24H,
    AppointmentNotice,
    SchedulingSettings,
)
from healthcrm.tenant_scope import all_tenants
from tests.concurrency import parallel
from tests.scheduling.scheduling_data import MONDAY_8AM, at, make_clinic, utc

TUESDAY_10 = utc(2031, 1, 7, 9, 0)  # 10:00 in Berlin, 26 hours after "now"
WEDNESDAY_11 = utc(2031, 1, 8, 10, 0)
MONDAY_1030 = datetime(2031, 1, 6, 9, 30, tzinfo=UTC)  # 23.5 hours before Tuesday 10:00
TUESDAY_0830 = datetime(2031, 1, 7, 7, 30, tzinfo=UTC)  # 1.5 hours before
NOTE = "My left knee hurts since the fall"


def emails(outbox_dir) -> list:
    """The outbox's messages in the order they were written (their names carry the frozen clock's time)."""
    return [
        BytesParser(policy=policy.default).parsebytes(path.read_bytes())
        for path in sorted(outbox_dir.glob("*.eml"), key=lambda path: path.stat().st_mtime_ns)
    ]


def text_of(message) -> str:
    return message.get_body(preferencelist=("plain",)).get_content()


def calendar_of(message):
    (attachment,) = list(message.iter_attachments())
    assert attachment.get_content_type() == "text/calendar"
    assert attachment.get_filename() == "appointment.ics"
    calendar = Calendar.from_ical(attachment.get_content())
    assert attachment.get_param("method") == str(calendar["method"])
    (event,) = calendar.walk("VEVENT")
    return calendar, event


def notices_of(kind: str) -> int:
    with all_tenants("test"):
        return db.session.scalar(
            select(func.count()).select_from(AppointmentNotice).where(AppointmentNotice.kind == kind)
        )


@pytest.fixture
def clinic(app):
    clinic = make_clinic()
    clinic.tenant.address = "Lindenstraße 5, 10115 Berlin"
    db.session.commit()
    return clinic


def patient_books(clinic, starts_at=TUESDAY_10, kind=None):
    actor = clinic.actor()
    kind = kind or clinic.video
    with at(MONDAY_8AM):
        hold = booking.hold_slot(actor, clinic.patient.id, kind.id, clinic.doctor.id, starts_at)
        return booking.confirm_hold(actor, clinic.patient.id, hold.id, NOTE)


def test_a_booking_sends_a_confirmation_with_its_ics_and_nothing_clinical(clinic, outbox_dir):
    appointment = patient_books(clinic)
    (message,) = emails(outbox_dir)
    assert message["To"] == clinic.patient.email
    assert message["Subject"] == "Your appointment is booked"
    text = text_of(message)
    assert f"Your appointment at {clinic.tenant.name} is booked." in text
    assert "Video follow-up" in text
    assert "Tue 07 Jan 2031, 10:00 (Europe/Berlin)" in text
    assert "https://video.example.test/room/lindenhof" in text
    assert "Find a quiet room" in text
    assert "+49 30 1234567" in text
    assert f"/portal/appointments/{appointment.id}" in text
    whole = message.as_string()
    assert "knee" not in whole and "Lenz" not in whole
    calendar, event = calendar_of(message)
    assert str(calendar["method"]) == "REQUEST"
    assert str(event["uid"]) == appointment.uid and int(event["sequence"]) == 0
    html = message.get_body(preferencelist=("html",)).get_content()
    assert "Find a quiet room" in html and f"/portal/appointments/{appointment.id}" in html


def test_a_move_sends_an_update_with_the_same_uid_and_a_higher_sequence(clinic, outbox_dir):
    appointment = patient_books(clinic)
    with at(MONDAY_8AM):
        booking.reschedule(clinic.actor(clinic.desk), appointment.id, WEDNESDAY_11)
    first, second = emails(outbox_dir)
    assert second["Subject"] == "Your appointment has moved"
    assert "Wed 08 Jan 2031, 11:00 (Europe/Berlin)" in text_of(second)
    _calendar, booked = calendar_of(first)
    calendar, moved = calendar_of(second)
    assert str(calendar["method"]) == "REQUEST"
    assert str(moved["uid"]) == str(booked["uid"])
    assert int(moved["sequence"]) == int(booked["sequence"]) + 1


def test_a_cancellation_sends_a_cancel_ics(clinic, outbox_dir):
    appointment = patient_books(clinic)
    with at(MONDAY_8AM):
        booking.cancel(clinic.actor(clinic.desk), appointment.id, "The doctor is ill")
    _first, message = emails(outbox_dir)
    assert message["Subject"] == "Your appointment is cancelled"
    text = text_of(message)
    assert "is cancelled" in text and "ill" not in text
    assert "https://video.example.test" not in text  # no link to a visit that will not happen
    calendar, event = calendar_of(message)
    assert str(calendar["method"]) == "CANCEL"
    assert str(event["status"]) == "CANCELLED"
    assert str(event["uid"]) == appointment.uid and int(event["sequence"]) == 1


def test_an_in_person_visit_names_the_clinics_address(clinic, outbox_dir):
    patient_books(clinic, kind=clinic.checkup)
    (message,) = emails(outbox_dir)
    text = text_of(message)
    assert "Lindenstraße 5, 10115 Berlin" in text and "video" not in text.lower()


def test_the_notice_job_run_twice_or_by_four_workers_sends_once(app, clinic, outbox_dir):
    appointment = patient_books(clinic)
    tenant_id, appointment_id = clinic.tenant.id, appointment.id
    for path in outbox_dir.glob("*.eml"):
        path.unlink()
    with all_tenants("test"):
        db.session.execute(AppointmentNotice.__table__.delete())
    db.session.commit()
    with at(MONDAY_8AM):
        outcomes = parallel(
            4, app, lambda _i: notices.send_notice(tenant_id, appointment_id, NOTICE_CONFIRMATION, 0)
        )
        again = notices.send_notice(tenant_id, appointment_id, NOTICE_CONFIRMATION, 0)
    assert sorted(outcomes) == [
        notices.SENT,
        notices.SENT_ALREADY,
        notices.SENT_ALREADY,
        notices.SENT_ALREADY,
    ]
    assert again == notices.SENT_ALREADY
    assert len(emails(outbox_dir)) == 1


def test_a_failed_send_claims_nothing_and_the_retry_sends(clinic, outbox_dir, monkeypatch):
    def down(_message):
        raise OSError("SMTP down")

    monkeypatch.setattr("healthcrm.mail.services.deliver", down)
    appointment = patient_books(clinic)  # the job fails (recorded on its row)
    monkeypatch.undo()
    assert emails(outbox_dir) == [] and notices_of(NOTICE_CONFIRMATION) == 0
    with at(MONDAY_8AM):
        assert notices.send_notice(clinic.tenant.id, appointment.id, NOTICE_CONFIRMATION, 0) == notices.SENT
    assert len(emails(outbox_dir)) == 1


def test_a_stale_notice_is_not_sent(clinic, outbox_dir):
    appointment = patient_books(clinic)
    with at(MONDAY_8AM):
        booking.reschedule(clinic.actor(clinic.desk), appointment.id, WEDNESDAY_11)
        # A reminder of the time before the move (sequence 0) would name the wrong time.
        outcome = notices.send_notice(clinic.tenant.id, appointment.id, NOTICE_REMINDER_24H, 0)
    assert outcome == notices.NO_LONGER_APPLIES
    assert notices_of(NOTICE_REMINDER_24H) == 0


def test_the_24_hour_reminder_is_sent_once_however_often_the_job_runs(clinic, outbox_dir):
    appointment = patient_books(clinic)
    with at(MONDAY_8AM):
        assert notices.send_due_reminders() == "0 reminders sent"  # 26 hours ahead: not yet
    with at(MONDAY_1030):
        assert notices.send_due_reminders() == "1 reminders sent"
        assert notices.send_due_reminders() == "0 reminders sent"
    _confirmation, reminder = emails(outbox_dir)
    assert reminder["Subject"] == "A reminder of your appointment"
    assert "is coming up" in text_of(reminder) and "Tue 07 Jan 2031, 10:00 (Europe/Berlin)" in text_of(
        reminder
    )
    _calendar, event = calendar_of(reminder)
    assert str(event["uid"]) == appointment.uid
    assert notices_of(NOTICE_REMINDER_24H) == 1


def test_two_workers_running_the_reminders_at_once_send_one(app, clinic, outbox_dir):
    patient_books(clinic)
    with at(MONDAY_1030):
        outcomes = parallel(2, app, lambda _i: notices.send_due_reminders())
    assert len(emails(outbox_dir)) == 2, outcomes  # the confirmation and one reminder
    assert "1 reminders sent" in outcomes, outcomes
    assert notices_of(NOTICE_REMINDER_24H) == 1


def test_the_2_hour_reminder_follows_unless_the_clinic_turned_it_off(clinic, outbox_dir):
    other = make_clinic("Hafenklinik")
    db.session.add(SchedulingSettings(tenant_id=other.tenant.id, reminder_2h=False))
    db.session.commit()
    patient_books(clinic)
    patient_books(other)
    with at(MONDAY_1030):
        assert notices.send_due_reminders() == "2 reminders sent"  # both clinics' 24-hour ones
    with at(TUESDAY_0830):
        assert notices.send_due_reminders() == "1 reminders sent"  # the first clinic's 2-hour one only
        assert notices.send_due_reminders() == "0 reminders sent"
    last = emails(outbox_dir)[-1]
    assert last["To"] == clinic.patient.email and last["Subject"] == "A reminder of your appointment"
    assert notices_of(NOTICE_REMINDER_24H) == 2 and notices_of(NOTICE_REMINDER_2H) == 1


def test_a_booking_made_inside_the_window_gets_no_reminder_right_after_its_confirmation(clinic, outbox_dir):
    today_15 = utc(2031, 1, 6, 14, 0)  # Monday 15:00 in Berlin, 7 hours ahead
    patient_books(clinic, starts_at=today_15)
    with at(MONDAY_1030):
        assert notices.send_due_reminders() == "0 reminders sent"
    with at(datetime(2031, 1, 6, 12, 30, tzinfo=UTC)):  # 1.5 hours before
        assert notices.send_due_reminders() == "1 reminders sent"
    assert notices_of(NOTICE_REMINDER_24H) == 0 and notices_of(NOTICE_REMINDER_2H) == 1


def test_a_patient_without_an_email_address_is_skipped_and_the_job_says_so(clinic, outbox_dir):
    patient_books(clinic)
    clinic.patient.email = None
    clinic.user.email = f"no-mail-{clinic.user.id}@invalid"
    clinic.user.active = False
    db.session.commit()
    with at(MONDAY_1030):
        result = notices.send_due_reminders()
    assert result == "0 reminders sent; 1 skipped (the patient has no email address)"
    assert notices_of(NOTICE_REMINDER_24H) == 0


def test_the_portal_accounts_address_is_used_when_the_patient_record_has_none(clinic, outbox_dir):
    clinic.patient.email = None
    db.session.commit()
    patient_books(clinic)
    (message,) = emails(outbox_dir)
    assert message["To"] == clinic.user.email


def test_due_reminder_picks_the_reminder_that_is_due():
    start = utc(2031, 1, 7, 9, 0)
    booked_long_ago = utc(2031, 1, 1, 9, 0)
    assert notices.due_reminder(start, booked_long_ago, utc(2031, 1, 6, 8, 0), True) is None
    assert notices.due_reminder(start, booked_long_ago, utc(2031, 1, 6, 10, 0), True) == NOTICE_REMINDER_24H
    assert notices.due_reminder(start, booked_long_ago, utc(2031, 1, 7, 8, 0), True) == NOTICE_REMINDER_2H
    assert notices.due_reminder(start, booked_long_ago, utc(2031, 1, 7, 8, 0), False) == NOTICE_REMINDER_24H
    assert notices.due_reminder(start, booked_long_ago, utc(2031, 1, 7, 9, 0), True) is None
    # Booked (or moved) after the reminder's time: its confirmation just said the same.
    assert notices.due_reminder(start, utc(2031, 1, 6, 12, 0), utc(2031, 1, 6, 13, 0), True) is None
