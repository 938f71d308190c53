"""The waitlist: first come first offered, the provider and the days respected, one offer at a time per
slot (also under real threads), a lapsed or declined offer going to the next patient, taking an offer
booking (or moving a booking, same uid), the email and the in-app notice, and nobody else's ids."""

from __future__ import annotations

from datetime import date, timedelta
from email import policy
from email.parser import BytesParser

import pytest
from sqlalchemy import func, select

from healthcrm.audit.services import Actor
from healthcrm.errors import NotFound
from healthcrm.extensions import db
from healthcrm.portal.models import Notification
from healthcrm.scheduling import booking, waitlist
from healthcrm.scheduling.models import (
    BOOKED,
    EXPIRED,
    HELD,
    OFFER_DECLINED,
    OFFER_LAPSED,
    OFFER_OPEN,
    OFFER_TAKEN,
    OFFERED,
    RELEASED,
    WAITING,
    WAITLIST_BOOKED,
    WAITLIST_EXPIRED,
    WITHDRAWN,
    Appointment,
    WaitlistEntry,
    WaitlistOffer,
)
from tests.concurrency import parallel
from tests.factories import login, make_patient, make_portal_user
from tests.scheduling.scheduling_data import MONDAY_8AM, at, make_clinic, utc

# Tuesday 10:00 in Berlin (09:00 UTC), a day after "now" (Monday 08:00).
TUESDAY_10 = utc(2031, 1, 7, 9, 0)
THURSDAY_10 = utc(2031, 1, 9, 9, 0)
MONDAY = date(2031, 1, 6)
TUESDAY = date(2031, 1, 7)


def _waiter(clinic, name: str):
    """Another patient with a portal account: (patient id, their Actor)."""
    patient = make_patient(clinic.tenant, first_name=name, email=f"{name.lower()}@patients.example.test")
    user = make_portal_user(patient)
    return patient.id, Actor(tenant_id=clinic.tenant.id, user_id=user.id, role="patient")


def _join(
    actor, patient_id, type_id, *, provider_id=None, first=MONDAY, last=MONDAY + timedelta(days=14), move=None
):
    return waitlist.join_waitlist(actor, patient_id, type_id, provider_id, first, last, move)


def _booked_then_cancelled(clinic, starts_at=TUESDAY_10, provider=None):
    """Staff book the other patient at `starts_at`, then cancel it: the slot frees (the event's handler
    offers it)."""
    desk = clinic.actor(clinic.desk)
    row = booking.book(
        desk, clinic.other_patient.id, clinic.checkup.id, (provider or clinic.doctor).id, starts_at
    )
    booking.cancel(desk, row.id, "The patient called")
    return row


def _offers(entry_id=None) -> list[WaitlistOffer]:
    statement = select(WaitlistOffer).order_by(WaitlistOffer.id).execution_options(all_tenants=True)
    if entry_id is not None:
        statement = statement.where(WaitlistOffer.entry_id == entry_id)
    db.session.expire_all()
    return list(db.session.scalars(statement))


def _entry(entry_id) -> WaitlistEntry:
    db.session.expire_all()
    return db.session.scalar(
        select(WaitlistEntry).where(WaitlistEntry.id == entry_id).execution_options(all_tenants=True)
    )


def _emails(outbox_dir, to: str) -> list:
    messages = [
        BytesParser(policy=policy.default).parsebytes(p.read_bytes()) for p in outbox_dir.glob("*.eml")
    ]
    return [m for m in messages if m["To"] == to and m["Subject"] == "An earlier appointment time is free"]


def test_the_first_waiting_patient_is_offered_a_cancelled_slot_by_email_and_in_app(
    app, outbox_dir, drain_jobs
):
    clinic = make_clinic()
    second_id, second = _waiter(clinic, "Second")
    with at(MONDAY_8AM):
        first = _join(clinic.actor(), clinic.patient.id, clinic.checkup.id)
    with at(MONDAY_8AM + timedelta(minutes=1)):
        later = _join(second, second_id, clinic.checkup.id)
    with at(MONDAY_8AM + timedelta(minutes=5)):
        _booked_then_cancelled(clinic)
        drain_jobs()
    [offer] = _offers()
    assert offer.entry_id == first.id and offer.status == OFFER_OPEN
    assert offer.starts_at == TUESDAY_10 and offer.provider_id == clinic.doctor.id
    # Held for the first patient for the clinic's offer minutes (120 by default).
    assert offer.hold.status == HELD and offer.hold.patient_id == clinic.patient.id
    assert offer.expires_at == MONDAY_8AM.replace(tzinfo=None) + timedelta(minutes=125)
    assert _entry(first.id).status == OFFERED and _entry(later.id).status == WAITING
    # In the portal, with the link to the offer; and by email, once, naming the time in the clinic's zone.
    notice = db.session.scalar(select(Notification).where(Notification.user_id == clinic.user.id))
    assert notice.link == f"/portal/waitlist/offers/{offer.id}" and notice.kind == "appointment"
    assert "Tue 07 Jan 2031, 10:00 (Europe/Berlin)" in notice.text
    [mail] = _emails(outbox_dir, clinic.user.email)
    body = mail.get_body(("plain",)).get_content()
    assert "10:00 (Europe/Berlin)" in body and "held for you until Mon 06 Jan, 10:05 (Europe/Berlin)" in body
    assert f"/portal/waitlist/offers/{offer.id}" in body
    assert "Check-up" not in body  # the time, not the kind of visit
    assert _emails(outbox_dir, "second@patients.example.test") == []
    # The email job run again sends nothing more.
    with at(MONDAY_8AM + timedelta(minutes=6)):
        assert waitlist.email_offer(offer.id, clinic.tenant.id) is False
    assert len(_emails(outbox_dir, clinic.user.email)) == 1


def test_the_provider_and_the_days_decide_who_is_offered(app, drain_jobs):
    clinic = make_clinic()
    nurse_only_id, nurse_only = _waiter(clinic, "Nurseonly")
    later_days_id, later_days = _waiter(clinic, "Laterdays")
    anyone_id, anyone = _waiter(clinic, "Anyone")
    with at(MONDAY_8AM):
        _join(nurse_only, nurse_only_id, clinic.checkup.id, provider_id=clinic.nurse.id)
        _join(later_days, later_days_id, clinic.checkup.id, first=TUESDAY + timedelta(days=1))
        _join(clinic.actor(), clinic.patient.id, clinic.video.id)  # another type
        wanted = _join(anyone, anyone_id, clinic.checkup.id)
        doctor_entry = _join(
            clinic.actor(clinic.other_user),
            clinic.other_patient.id,
            clinic.checkup.id,
            provider_id=clinic.doctor.id,
        )
    with at(MONDAY_8AM + timedelta(minutes=5)):
        _booked_then_cancelled(clinic)
        drain_jobs()
    [offer] = _offers()
    assert offer.entry_id == wanted.id  # the first whose provider (any), days and type fit
    assert _entry(doctor_entry.id).status == WAITING


def test_a_booking_to_move_is_offered_only_earlier_times_and_taking_it_moves_it(app, drain_jobs):
    clinic = make_clinic()
    desk = clinic.actor(clinic.desk)
    with at(MONDAY_8AM):
        mine = booking.book(desk, clinic.patient.id, clinic.checkup.id, clinic.doctor.id, THURSDAY_10)
        before = booking.book(
            desk, clinic.patient.id, clinic.video.id, clinic.nurse.id, utc(2031, 1, 6, 14, 0)
        )
        uid, sequence = mine.uid, mine.sequence
        entry = _join(clinic.actor(), clinic.patient.id, clinic.checkup.id, move=mine.id)
        assert before.id  # a booking of another kind, not moved
    with at(MONDAY_8AM + timedelta(minutes=5)):
        # A slot after the booking is not an earlier time: nobody is offered it.
        _booked_then_cancelled(clinic, starts_at=utc(2031, 1, 10, 9, 0))
        assert _offers() == []
        _booked_then_cancelled(clinic)
        drain_jobs()
        [offer] = _offers()
        assert offer.hold.uid == uid  # the hold is the same booking's: it never clashes with it
        moved = waitlist.accept_offer(clinic.actor(), clinic.patient.id, offer.id)
        drain_jobs()
    assert moved.id == mine.id and moved.starts_at == TUESDAY_10 and moved.uid == uid
    assert moved.sequence == sequence + 1 and moved.status == BOOKED
    assert _offers()[0].status == OFFER_TAKEN and _offers()[0].hold.status == RELEASED
    assert _entry(entry.id).status == WAITLIST_BOOKED
    assert (
        db.session.scalar(
            select(func.count())
            .select_from(Appointment)
            .where(Appointment.uid == uid, Appointment.status == BOOKED)
        )
        == 1
    )


def test_taking_an_offer_books_the_held_time_once(app, drain_jobs):
    clinic = make_clinic()
    with at(MONDAY_8AM):
        entry = _join(clinic.actor(), clinic.patient.id, clinic.checkup.id)
    with at(MONDAY_8AM + timedelta(minutes=5)):
        _booked_then_cancelled(clinic)
        drain_jobs()
        [offer] = _offers()
        booked = waitlist.accept_offer(clinic.actor(), clinic.patient.id, offer.id)
        again = waitlist.accept_offer(clinic.actor(), clinic.patient.id, offer.id)
    assert booked.id == again.id == offer.hold_id
    assert booked.status == BOOKED and booked.hold_expires_at is None
    assert _entry(entry.id).status == WAITLIST_BOOKED and _offers()[0].status == OFFER_TAKEN


def test_a_lapsed_offer_goes_to_the_next_patient_and_not_back(app, drain_jobs):
    clinic = make_clinic()
    second_id, second = _waiter(clinic, "Second")
    with at(MONDAY_8AM):
        first = _join(clinic.actor(), clinic.patient.id, clinic.checkup.id)
    with at(MONDAY_8AM + timedelta(minutes=1)):
        nxt = _join(second, second_id, clinic.checkup.id)
    with at(MONDAY_8AM + timedelta(minutes=5)):
        _booked_then_cancelled(clinic)
        drain_jobs()
    with at(MONDAY_8AM + timedelta(minutes=5 + 60)):
        assert waitlist.lapse_offers().startswith("0 offers lapsed")
    with at(MONDAY_8AM + timedelta(minutes=5 + 121)):
        assert waitlist.lapse_offers().startswith("1 offers lapsed, 1 offered on")
        drain_jobs()
        with pytest.raises(waitlist.OfferEnded):
            waitlist.accept_offer(clinic.actor(), clinic.patient.id, _offers(first.id)[0].id)
    lapsed, offered = _offers()
    assert lapsed.entry_id == first.id and lapsed.status == OFFER_LAPSED and lapsed.hold.status == EXPIRED
    assert offered.entry_id == nxt.id and offered.status == OFFER_OPEN and offered.hold.status == HELD
    assert _entry(first.id).status == WAITING and _entry(nxt.id).status == OFFERED
    # The second lapses too: the first patient is not offered the same slot again.
    with at(MONDAY_8AM + timedelta(minutes=5 + 250)):
        assert waitlist.lapse_offers().startswith("1 offers lapsed, 0 offered on")
    assert len(_offers()) == 2 and _entry(first.id).status == WAITING


def test_no_thanks_gives_the_slot_to_the_next_patient(app, drain_jobs):
    clinic = make_clinic()
    second_id, second = _waiter(clinic, "Second")
    with at(MONDAY_8AM):
        first = _join(clinic.actor(), clinic.patient.id, clinic.checkup.id)
    with at(MONDAY_8AM + timedelta(minutes=1)):
        nxt = _join(second, second_id, clinic.checkup.id)
    with at(MONDAY_8AM + timedelta(minutes=5)):
        _booked_then_cancelled(clinic)
        drain_jobs()
        [offer] = _offers()
        declined = waitlist.decline_offer(clinic.actor(), clinic.patient.id, offer.id)
        drain_jobs()
    assert declined.status == OFFER_DECLINED and declined.hold.status == RELEASED
    assert _entry(first.id).status == WAITING  # still waiting for other times
    [_, offered] = _offers()
    assert offered.entry_id == nxt.id and offered.hold.patient_id == second_id


def test_two_offers_of_one_slot_at_once_make_one(app):
    clinic = make_clinic()
    waiting = [_waiter(clinic, f"W{n}") for n in range(4)]
    with at(MONDAY_8AM):
        for patient_id, actor in waiting:
            _join(actor, patient_id, clinic.checkup.id)
    tenant_id, doctor_id, type_id = clinic.tenant.id, clinic.doctor.id, clinic.checkup.id

    def work(_i: int):
        with at(MONDAY_8AM + timedelta(minutes=5)):
            offer = waitlist.offer_freed_slot(tenant_id, doctor_id, type_id, TUESDAY_10)
            return offer.id if offer else None

    outcomes = parallel(2, app, work)
    assert sorted(outcomes, key=str) == sorted([_offers()[0].id, None], key=str), outcomes
    assert len(_offers()) == 1
    held = db.session.scalar(
        select(func.count())
        .select_from(Appointment)
        .where(Appointment.status == HELD, Appointment.provider_id == doctor_id)
    )
    assert held == 1
    statuses = sorted(_entry(e.id).status for e in db.session.scalars(select(WaitlistEntry)))
    assert statuses == [OFFERED, WAITING, WAITING, WAITING]


def test_a_slot_someone_holds_is_offered_to_nobody(app):
    clinic = make_clinic()
    with at(MONDAY_8AM):
        _join(clinic.actor(), clinic.patient.id, clinic.checkup.id)
        booking.hold_slot(
            clinic.actor(clinic.other_user),
            clinic.other_patient.id,
            clinic.checkup.id,
            clinic.doctor.id,
            TUESDAY_10,
        )
        assert (
            waitlist.offer_freed_slot(clinic.tenant.id, clinic.doctor.id, clinic.checkup.id, TUESDAY_10)
            is None
        )
    [entry] = db.session.scalars(select(WaitlistEntry))
    assert _entry(entry.id).status == WAITING and _offers() == []


def test_withdrawing_an_offered_entry_passes_the_slot_on(app, drain_jobs):
    clinic = make_clinic()
    second_id, second = _waiter(clinic, "Second")
    with at(MONDAY_8AM):
        first = _join(clinic.actor(), clinic.patient.id, clinic.checkup.id)
        nxt = _join(second, second_id, clinic.checkup.id)
        waitlist.offer_freed_slot(clinic.tenant.id, clinic.doctor.id, clinic.checkup.id, TUESDAY_10)
        drain_jobs()
        assert waitlist.withdraw(clinic.actor(), clinic.patient.id, first.id).status == WITHDRAWN
        assert waitlist.withdraw(clinic.actor(), clinic.patient.id, first.id).status == WITHDRAWN
        drain_jobs()
    assert [o.entry_id for o in _offers() if o.status == OFFER_OPEN] == [nxt.id]


def test_entries_end_when_their_last_day_has_passed(app):
    clinic = make_clinic()
    with at(MONDAY_8AM):
        entry = _join(clinic.actor(), clinic.patient.id, clinic.checkup.id, last=TUESDAY)
    with at(MONDAY_8AM + timedelta(days=1, hours=15)):  # Tuesday 23:00 in Berlin: still its last day
        waitlist.lapse_offers()
        assert _entry(entry.id).status == WAITING
    with at(MONDAY_8AM + timedelta(days=1, hours=16, minutes=1)):  # Wednesday 00:01 in Berlin
        assert waitlist.lapse_offers().endswith("1 waitlist entries ended")
    assert _entry(entry.id).status == WAITLIST_EXPIRED


@pytest.mark.parametrize(
    ("first", "last", "field", "message"),
    [
        (MONDAY - timedelta(days=1), MONDAY, "earliest_day", "The first day cannot be in the past."),
        (TUESDAY, MONDAY, "latest_day", "The last day must be on or after the first day."),
        (MONDAY, MONDAY + timedelta(days=29), "latest_day", "can be booked up to 28 days ahead"),
        (None, MONDAY, "earliest_day", "Choose the first day"),
    ],
)
def test_bad_days_are_refused_with_a_clear_message(app, first, last, field, message):
    clinic = make_clinic()
    with at(MONDAY_8AM), pytest.raises(waitlist.WaitlistError) as refused:
        _join(clinic.actor(), clinic.patient.id, clinic.checkup.id, first=first, last=last)
    assert refused.value.field == field and message in refused.value.message
    assert db.session.scalar(select(func.count()).select_from(WaitlistEntry)) == 0


def test_one_open_entry_per_type_and_nobody_elses_ids(app):
    clinic = make_clinic()
    other = clinic.actor(clinic.other_user)
    desk = clinic.actor(clinic.desk)
    with at(MONDAY_8AM):
        entry = _join(clinic.actor(), clinic.patient.id, clinic.checkup.id)
        with pytest.raises(waitlist.WaitlistError, match="on the waitlist for this kind"):
            _join(clinic.actor(), clinic.patient.id, clinic.checkup.id)
        theirs = booking.book(desk, clinic.other_patient.id, clinic.checkup.id, clinic.doctor.id, THURSDAY_10)
        with pytest.raises(NotFound):
            _join(clinic.actor(), clinic.patient.id, clinic.checkup.id, move=theirs.id)
        with pytest.raises(NotFound):
            waitlist.withdraw(other, clinic.other_patient.id, entry.id)
        with pytest.raises(NotFound):  # the patient id comes from the session: another's is refused
            waitlist.patient_waitlist(other, clinic.patient.id)
        offer = waitlist.offer_freed_slot(clinic.tenant.id, clinic.doctor.id, clinic.checkup.id, TUESDAY_10)
        for call in (waitlist.accept_offer, waitlist.decline_offer, waitlist.patient_offer):
            with pytest.raises(NotFound):
                call(other, clinic.other_patient.id, offer.id)
    assert _entry(entry.id).status == OFFERED and _offers()[0].status == OFFER_OPEN


def test_two_joins_at_once_make_one_entry(app):
    clinic = make_clinic()
    tenant_id, user_id, patient_id, type_id = (
        clinic.tenant.id,
        clinic.user.id,
        clinic.patient.id,
        clinic.checkup.id,
    )

    def work(_i: int):
        with at(MONDAY_8AM):
            actor = Actor(tenant_id=tenant_id, user_id=user_id, role="patient")
            return _join(actor, patient_id, type_id).id

    outcomes = parallel(2, app, work)
    assert sum(isinstance(o, int) for o in outcomes) == 1, outcomes
    assert sum(isinstance(o, waitlist.WaitlistError) for o in outcomes) == 1, outcomes


# --- the pages -------------------------------------------------------------------------------------------


def test_the_waitlist_pages(app, client, drain_jobs):
    clinic = make_clinic()
    with at(MONDAY_8AM):
        login(client, clinic.user.email)
        page = client.get("/portal/waitlist/")
        assert page.status_code == 200
        html = page.get_data(as_text=True)
        assert 'value="2031-01-06"' in html and 'value="2031-01-20"' in html and "Any provider" in html
        refused = client.post(
            "/portal/waitlist/",
            data={"type_id": clinic.checkup.id, "earliest_day": "2031-01-08", "latest_day": "2031-01-07"},
        )
        assert refused.status_code == 422
        assert "The last day must be on or after the first day." in refused.get_data(as_text=True)
        joined = client.post(
            "/portal/waitlist/",
            data={
                "type_id": clinic.checkup.id,
                "provider_id": "",
                "earliest_day": "2031-01-06",
                "latest_day": "2031-01-10",
            },
        )
        assert joined.status_code == 303
        assert "Check-up" in client.get("/portal/waitlist/").get_data(as_text=True)
        offer = waitlist.offer_freed_slot(clinic.tenant.id, clinic.doctor.id, clinic.checkup.id, TUESDAY_10)
        drain_jobs()
        shown = client.get(f"/portal/waitlist/offers/{offer.id}").get_data(as_text=True)
        assert "Tue 07 Jan 2031, 10:00 (Europe/Berlin)" in shown
        # The hold ends on Monday, the offered time is Tuesday's: the day is named.
        assert "Held for you until <strong>Mon 06 Jan, 10:00</strong> (Europe/Berlin)" in shown
        assert "Accept this time" in shown and "No thanks" in shown
        assert client.post(f"/portal/waitlist/offers/{offer.id}/accept", data={}).status_code == 303
        assert "This time is yours" in client.get(f"/portal/waitlist/offers/{offer.id}").get_data(
            as_text=True
        )


def test_another_patients_offer_and_entry_are_404(app, client, drain_jobs):
    clinic = make_clinic()
    with at(MONDAY_8AM):
        entry = _join(clinic.actor(), clinic.patient.id, clinic.checkup.id)
        offer = waitlist.offer_freed_slot(clinic.tenant.id, clinic.doctor.id, clinic.checkup.id, TUESDAY_10)
        drain_jobs()
        login(client, clinic.other_user.email)
        assert client.get(f"/portal/waitlist/offers/{offer.id}").status_code == 404
        assert client.post(f"/portal/waitlist/offers/{offer.id}/accept", data={}).status_code == 404
        assert client.post(f"/portal/waitlist/offers/{offer.id}/decline", data={}).status_code == 404
        assert client.post(f"/portal/waitlist/{entry.id}/withdraw", data={}).status_code == 404
    assert _entry(entry.id).status == OFFERED and _offers()[0].status == OFFER_OPEN
