"""No two appointments or holds of one provider overlap, buffers included, whatever their lengths and
however many requests arrive at once: the database refuses it (SQLite and PostgreSQL)."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError

from healthcrm.extensions import db
from healthcrm.scheduling import booking
from healthcrm.scheduling.models import BLOCKING, BOOKED, HELD, Appointment
from tests.concurrency import parallel
from tests.factories import make_patient, make_portal_user
from tests.scheduling.scheduling_data import MONDAY_8AM, at, make_clinic, utc

# Tuesday 10:00 in Berlin (09:00 UTC), a day after "now".
TUESDAY_10 = utc(2031, 1, 7, 9, 0)


def _blocking(provider_id: int) -> int:
    return db.session.scalar(
        select(func.count())
        .select_from(Appointment)
        .where(Appointment.provider_id == provider_id, Appointment.status.in_(BLOCKING))
    )


def test_twenty_patients_holding_one_slot_at_once_one_wins(app):
    clinic = make_clinic()
    patients = [clinic.patient.id]
    users = {clinic.patient.id: (clinic.user.id, "patient")}
    for n in range(19):
        patient = make_patient(clinic.tenant, first_name=f"P{n}")
        users[patient.id] = (make_portal_user(patient).id, "patient")
        patients.append(patient.id)
    tenant_id, type_id, doctor_id = clinic.tenant.id, clinic.video.id, clinic.doctor.id

    def work(i: int):
        from healthcrm.audit.services import Actor

        user_id, role = users[patients[i]]
        with at(MONDAY_8AM):
            return booking.hold_slot(
                Actor(tenant_id=tenant_id, user_id=user_id, role=role),
                patients[i],
                type_id,
                doctor_id,
                TUESDAY_10,
            ).id

    outcomes = parallel(20, app, work)
    won = [o for o in outcomes if isinstance(o, int)]
    lost = [o for o in outcomes if isinstance(o, booking.SlotTaken)]
    assert len(won) == 1, outcomes
    assert len(lost) == 19, outcomes
    assert all(o.message.startswith("This time was just taken") for o in lost)
    # The alternatives are real free times, nearest first, and not the taken one.
    assert lost[0].alternatives and all(s.starts_at != TUESDAY_10 for s in lost[0].alternatives)
    assert _blocking(doctor_id) == 1


def test_twenty_staff_bookings_of_one_slot_at_once_one_wins(app):
    clinic = make_clinic()
    patients = [make_patient(clinic.tenant, first_name=f"P{n}").id for n in range(20)]
    desk = clinic.actor(clinic.desk)

    def work(i: int):
        with at(MONDAY_8AM):
            return booking.book(desk, patients[i], clinic_type, doctor_id, TUESDAY_10).id

    clinic_type, doctor_id = clinic.checkup.id, clinic.doctor.id
    outcomes = parallel(20, app, work)
    assert sum(isinstance(o, int) for o in outcomes) == 1, outcomes
    assert sum(isinstance(o, booking.SlotTaken) for o in outcomes) == 19, outcomes
    assert _blocking(doctor_id) == 1


def _row(
    clinic, starts, minutes, *, status=BOOKED, before=0, after=0, provider=None, **fields
) -> Appointment:
    return Appointment(
        tenant_id=clinic.tenant.id,
        patient_id=clinic.patient.id,
        provider_id=(provider or clinic.doctor).id,
        type_id=clinic.checkup.id,
        starts_at=starts,
        ends_at=starts + timedelta(minutes=minutes),
        blocked_from=starts - timedelta(minutes=before),
        blocked_until=starts + timedelta(minutes=minutes + after),
        status=status,
        hold_expires_at=starts if status == HELD else None,
        **fields,
    )


@pytest.mark.parametrize(
    ("offset", "minutes", "clash"),
    [
        (0, 60, True),  # the same start, longer
        (15, 10, True),  # inside
        (-30, 45, True),  # across the start
        (25, 60, True),  # across the end
        (30, 20, False),  # right after
        (-20, 20, False),  # right before
    ],
)
def test_the_database_refuses_overlaps_of_any_length(app, offset, minutes, clash):
    clinic = make_clinic()
    db.session.add(_row(clinic, TUESDAY_10, 30))
    db.session.commit()
    db.session.add(_row(clinic, TUESDAY_10 + timedelta(minutes=offset), minutes))
    if clash:
        with pytest.raises(IntegrityError):
            db.session.commit()
        db.session.rollback()
    else:
        db.session.commit()


def test_buffers_count_and_other_providers_and_finished_rows_do_not(app):
    clinic = make_clinic()
    db.session.add(_row(clinic, TUESDAY_10, 30, after=10))
    db.session.commit()
    # Starts when the first ends, but inside its 10-minute buffer.
    db.session.add(_row(clinic, TUESDAY_10 + timedelta(minutes=30), 20))
    with pytest.raises(IntegrityError):
        db.session.commit()
    db.session.rollback()
    # Its own 5-minute buffer before reaches back into the first one's buffer after.
    db.session.add(_row(clinic, TUESDAY_10 + timedelta(minutes=42), 20, before=5))
    with pytest.raises(IntegrityError):
        db.session.commit()
    db.session.rollback()
    # Buffers that only touch are fine.
    db.session.add(_row(clinic, TUESDAY_10 + timedelta(minutes=45), 20, before=5))
    db.session.commit()
    db.session.add(_row(clinic, TUESDAY_10, 30, provider=clinic.nurse))  # another provider: fine
    db.session.add(_row(clinic, TUESDAY_10, 30, status="cancelled"))  # cancelled: fine
    db.session.add(_row(clinic, TUESDAY_10, 30, overbooked=True, overbook_reason="urgent"))  # on purpose
    db.session.commit()
    # Moving an appointment onto another is refused too (UPDATE, not only INSERT).
    later = _row(clinic, TUESDAY_10 + timedelta(hours=3), 30)
    db.session.add(later)
    db.session.commit()
    later.starts_at, later.blocked_from = (
        TUESDAY_10 + timedelta(minutes=10),
        TUESDAY_10 + timedelta(minutes=10),
    )
    later.ends_at = later.blocked_until = TUESDAY_10 + timedelta(minutes=40)
    with pytest.raises(IntegrityError):
        db.session.commit()
    db.session.rollback()


def test_an_expired_hold_frees_its_slot(app):
    clinic = make_clinic()
    with at(MONDAY_8AM):
        hold = booking.hold_slot(
            clinic.actor(), clinic.patient.id, clinic.video.id, clinic.doctor.id, TUESDAY_10
        )
        assert hold.status == HELD
    other = clinic.actor(clinic.other_user)
    with at(MONDAY_8AM + timedelta(minutes=5)), pytest.raises(booking.SlotTaken):
        booking.hold_slot(other, clinic.other_patient.id, clinic.video.id, clinic.doctor.id, TUESDAY_10)
    with at(MONDAY_8AM + timedelta(minutes=11)):
        second = booking.hold_slot(
            other, clinic.other_patient.id, clinic.video.id, clinic.doctor.id, TUESDAY_10
        )
        with pytest.raises(booking.HoldLapsed):
            booking.confirm_hold(clinic.actor(), clinic.patient.id, hold.id)
        booked = booking.confirm_hold(other, clinic.other_patient.id, second.id)
        assert booked.status == BOOKED
        # Confirming twice books once.
        assert booking.confirm_hold(other, clinic.other_patient.id, second.id).id == booked.id
    assert _blocking(clinic.doctor.id) == 1
