"""Booking and cancelling through the real worker process (in CI; inline elsewhere), on the real clock: the
events are handled, the emails with their .ics sent, the patient's task opened, each once."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import select

from healthcrm.care.models import Task
from healthcrm.clock import utcnow
from healthcrm.extensions import db
from healthcrm.scheduling import booking
from tests.scheduling.scheduling_data import make_clinic
from tests.scheduling.test_notices import calendar_of, emails

pytestmark = pytest.mark.worker


def test_a_booking_and_its_cancellation_are_told_to_the_patient_by_the_worker(app, outbox_dir, drain_jobs):
    clinic = make_clinic()
    desk = clinic.actor(clinic.desk)
    # Staff may book outside the provider's hours: the test does not depend on today's weekday.
    starts = utcnow().replace(second=0, microsecond=0) + timedelta(days=3)
    row = booking.book(desk, clinic.patient.id, clinic.video.id, clinic.doctor.id, starts)
    drain_jobs()
    booking.cancel(desk, row.id, "The doctor is away")
    drain_jobs()

    sent = emails(outbox_dir)
    subjects = [str(m["Subject"]) for m in sent]
    assert subjects == ["Your appointment is booked", "Your appointment is cancelled"]
    (booked, _), (cancelled, event) = (calendar_of(m) for m in sent)
    assert str(booked["METHOD"]) == "REQUEST" and str(cancelled["METHOD"]) == "CANCEL"
    assert str(event["UID"]) == row.uid and int(event["SEQUENCE"]) == 1
    # Staff did it: the patient is told in the portal, no staff task opens.
    assert db.session.scalars(select(Task).where(Task.patient_id == clinic.patient.id)).all() == []
