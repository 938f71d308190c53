"""What appointment events set off: a task when the patient did it, a notification when staff did it for
them, the email either way, the first booking moving a new patient into active care; and nothing for what
no longer applies."""

from __future__ import annotations

from email import policy
from email.parser import BytesParser

import pytest
from sqlalchemy import select

from healthcrm.care.models import Task
from healthcrm.extensions import db
from healthcrm.patients.models import Patient
from healthcrm.portal import events
from healthcrm.portal.models import Notification, PortalEvent
from healthcrm.scheduling import booking
from healthcrm.scheduling.handlers import TASK_KIND
from healthcrm.tenant_scope import all_tenants
from tests.scheduling.scheduling_data import MONDAY_8AM, at, make_clinic, utc

TUESDAY_10 = utc(2031, 1, 7, 9, 0)
WEDNESDAY_11 = utc(2031, 1, 8, 10, 0)


def tasks() -> list[Task]:
    with all_tenants("test"):
        return list(db.session.scalars(select(Task).order_by(Task.id)))


def notifications() -> list[Notification]:
    with all_tenants("test"):
        return list(db.session.scalars(select(Notification).order_by(Notification.id)))


def subjects(outbox_dir) -> list[str]:
    return sorted(
        str(BytesParser(policy=policy.default).parsebytes(path.read_bytes())["Subject"])
        for path in outbox_dir.glob("*.eml")
    )


@pytest.fixture
def clinic(app):
    return make_clinic()


def patient_books(clinic, patient=None, user=None, starts_at=TUESDAY_10):
    patient, user = patient or clinic.patient, user or clinic.user
    actor = clinic.actor(user)
    with at(MONDAY_8AM):
        hold = booking.hold_slot(actor, patient.id, clinic.video.id, clinic.doctor.id, starts_at)
        return booking.confirm_hold(actor, patient.id, hold.id)


def test_a_patients_booking_opens_a_task_for_their_coach_and_no_notification(clinic, outbox_dir):
    appointment = patient_books(clinic)
    (task,) = tasks()
    assert task.kind == TASK_KIND and task.assignee_id == clinic.coach.id
    assert task.patient_id == clinic.patient.id
    assert task.title == "Booked online: Video follow-up, Tue 07 Jan 2031, 10:00 (Europe/Berlin)"
    assert task.subject_type == "appointment" and task.subject_id == appointment.id
    assert task.link == f"/schedule/appointments/{appointment.id}"
    assert notifications() == []  # the patient saw the confirmation page
    assert subjects(outbox_dir) == ["Your appointment is booked"]


def test_without_a_coach_the_task_goes_to_the_types_pool_or_else_the_booking_staff(clinic):
    clinic.video.task_pool_role = "nurse"
    db.session.commit()
    patient_books(clinic, clinic.other_patient, clinic.other_user)  # Jonas has no coach
    (task,) = tasks()
    assert task.assignee_id is None and task.pool_roles == ["nurse"]

    clinic.video.task_pool_role = None
    db.session.commit()
    with at(MONDAY_8AM):
        actor = clinic.actor(clinic.other_user)
        hold = booking.hold_slot(actor, clinic.other_patient.id, clinic.video.id, clinic.nurse.id, TUESDAY_10)
        booking.confirm_hold(actor, clinic.other_patient.id, hold.id)
    second = tasks()[-1]
    assert second.assignee_id is None and "front_desk" in second.pool_roles


def test_a_patients_move_and_cancel_open_tasks_too(clinic):
    appointment = patient_books(clinic)
    actor = clinic.actor()
    with at(MONDAY_8AM):
        hold = booking.hold_slot(
            actor,
            clinic.patient.id,
            clinic.video.id,
            clinic.doctor.id,
            WEDNESDAY_11,
            purpose="reschedule",
            reschedules_id=appointment.id,
        )
        booking.confirm_hold(actor, clinic.patient.id, hold.id)
        booking.cancel(actor, appointment.id, patient_id=clinic.patient.id)
    titles = [task.title.split(":")[0] for task in tasks()]
    assert titles == ["Booked online", "Moved online", "Cancelled online"]
    assert notifications() == []


def test_staff_booking_moving_and_cancelling_notify_the_patient_without_a_task(clinic, outbox_dir):
    desk = clinic.actor(clinic.desk)
    with at(MONDAY_8AM):
        appointment = booking.book(desk, clinic.patient.id, clinic.video.id, clinic.doctor.id, TUESDAY_10)
        booking.reschedule(desk, appointment.id, WEDNESDAY_11)
        booking.cancel(desk, appointment.id, "The doctor is ill")
    assert tasks() == []
    sent = notifications()
    assert [n.user_id for n in sent] == [clinic.user.id] * 3
    assert {n.kind for n in sent} == {"appointment"}
    assert {n.link for n in sent} == {f"/portal/appointments/{appointment.id}"}
    booked = "The clinic booked an appointment for you: Video follow-up, Tue 07 Jan 2031, 10:00"
    assert sent[0].text == f"{booked} (Europe/Berlin)."
    assert sent[1].text.startswith(
        "The clinic moved your appointment: Video follow-up, Wed 08 Jan 2031, 11:00"
    )
    assert sent[2].text.startswith("The clinic cancelled your appointment")
    assert "ill" not in sent[2].text
    assert subjects(outbox_dir) == [
        "Your appointment has moved",
        "Your appointment is booked",
        "Your appointment is cancelled",
    ]


def test_the_first_booking_moves_a_new_patient_into_active_care_once(clinic):
    clinic.patient.care_stage = "new"
    db.session.commit()
    first = patient_books(clinic)
    db.session.expire_all()
    assert db.session.get(Patient, clinic.patient.id).care_stage == "active"
    # Back to new by hand: a second booking is not the first any more, so the rule leaves them be.
    db.session.get(Patient, clinic.patient.id).care_stage = "new"
    db.session.commit()
    with at(MONDAY_8AM):
        booking.cancel(clinic.actor(clinic.desk), first.id)
    patient_books(clinic, starts_at=WEDNESDAY_11)
    db.session.expire_all()
    assert db.session.get(Patient, clinic.patient.id).care_stage == "new"


def test_an_appointment_cancelled_before_its_booking_was_handled_gets_no_task_and_no_confirmation(
    clinic, outbox_dir, monkeypatch
):
    monkeypatch.setattr(events, "dispatch", lambda: None)  # nothing handled until the test says so
    appointment = patient_books(clinic)
    with at(MONDAY_8AM):
        booking.cancel(clinic.actor(), appointment.id, patient_id=clinic.patient.id)
    monkeypatch.undo()
    with all_tenants("test"):
        raised = db.session.scalars(select(PortalEvent).order_by(PortalEvent.id)).all()
    assert [e.kind for e in raised] == ["appointment.booked", "appointment.cancelled"]
    with at(MONDAY_8AM):
        for event in raised:
            assert events.handle_event(event.id, event.tenant_id) is True
    assert [task.title.split(":")[0] for task in tasks()] == ["Cancelled online"]
    assert subjects(outbox_dir) == ["Your appointment is cancelled"]


def test_a_booked_event_handled_twice_sends_one_email_and_opens_one_task(clinic, outbox_dir, monkeypatch):
    monkeypatch.setattr(events, "dispatch", lambda: None)
    patient_books(clinic)
    monkeypatch.undo()
    with all_tenants("test"):
        event = db.session.scalars(select(PortalEvent)).one()
    with at(MONDAY_8AM):
        assert events.handle_event(event.id, event.tenant_id) is True
        assert events.handle_event(event.id, event.tenant_id) is False
        events.sweep_unhandled()
    assert len(tasks()) == 1
    assert subjects(outbox_dir) == ["Your appointment is booked"]
