"""The patient books in the portal: choose a type and a provider, see the week's free times in the
clinic's zone (page and htmx fragment), hold one, confirm it once; a taken time offers the nearest free
ones, a lapsed hold says so and shows the times again."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import func, select

from healthcrm.audit.models import AuditEvent
from healthcrm.extensions import db
from healthcrm.scheduling import booking
from healthcrm.scheduling.models import BOOKED, HELD, RELEASED, Appointment
from tests.factories import login
from tests.scheduling.scheduling_data import MONDAY_8AM, at, make_clinic, utc

# Tuesday 10:00 in Berlin (09:00 UTC), a day after "now".
TUESDAY_10 = utc(2031, 1, 7, 9, 0)
BOOK = "/portal/appointments/book"
HOLD = "/portal/appointments/hold"


def _sign_in(client, user):
    response = login(client, user.email)
    assert response.status_code in (302, 303), response.status_code


def _count(model, *where) -> int:
    return db.session.scalar(select(func.count()).select_from(model).where(*where))


def _audits(action: str) -> int:
    return _count(AuditEvent, AuditEvent.action == action)


def _hold_id(response) -> int:
    assert response.status_code == 303, response.text
    return int(response.headers["Location"].rstrip("/").rsplit("/", 1)[1])


def test_book_hold_and_confirm_through_the_pages_and_a_replayed_confirm_books_once(app, client):
    clinic = make_clinic()
    with at(MONDAY_8AM):
        _sign_in(client, clinic.user)
        start = client.get(BOOK)
        assert start.status_code == 200
        assert "Video follow-up" in start.text and "Check-up" in start.text and "Any provider" in start.text
        assert "Choose the kind of appointment" in start.text

        page = client.get(BOOK, query_string={"type_id": clinic.video.id, "provider_id": clinic.doctor.id})
        assert page.status_code == 200
        assert "Europe/Berlin" in page.text
        # Tuesday 10:00 Berlin is offered as its UTC instant; Monday before 10:00 is inside the notice.
        assert 'value="2031-01-07T09:00:00"' in page.text and "Tuesday 07 January" in page.text
        assert 'value="2031-01-06T07:30:00"' not in page.text  # Monday 08:30 local: inside the 2 h notice
        assert "Monday 06 January" in page.text  # later that Monday is bookable

        held = client.post(
            HOLD,
            data={
                "type_id": clinic.video.id,
                "provider_id": clinic.doctor.id,
                "starts_at": TUESDAY_10.isoformat(),
            },
        )
        hold_id = _hold_id(held)
        confirm_page = client.get(f"/portal/appointments/hold/{hold_id}")
        assert confirm_page.status_code == 200
        # Held for the clinic's 10 minutes: until 08:10 Berlin time.
        assert "held for you until <strong>08:10</strong> (Europe/Berlin)" in confirm_page.text
        assert "Tue 07 Jan 2031, 10:00" in confirm_page.text and "Choose another time" in confirm_page.text

        done = client.post(f"/portal/appointments/hold/{hold_id}/confirm", data={"note": "Knee hurts"})
        assert done.status_code == 303 and done.headers["Location"].endswith(
            f"/portal/appointments/{hold_id}"
        )
        again = client.post(f"/portal/appointments/hold/{hold_id}/confirm", data={"note": "Knee hurts"})
        assert again.status_code == 303 and again.headers["Location"] == done.headers["Location"]

        row = db.session.get(Appointment, hold_id)
        assert (
            row.status == BOOKED and row.patient_note == "Knee hurts" and row.patient_id == clinic.patient.id
        )
        assert (
            _count(Appointment, Appointment.patient_id == clinic.patient.id, Appointment.status == BOOKED)
            == 1
        )
        assert _audits("appointment.book") == 1

        listing = client.get("/portal/appointments/")
        assert listing.status_code == 200
        assert "Tue 07 Jan 2031, 10:00" in listing.text and "(Europe/Berlin)" in listing.text
        assert "Join the video visit" in listing.text and clinic.video.video_link in listing.text
        assert "have your medication list at hand" in listing.text and "Book an appointment" in listing.text
        assert clinic.doctor.full_name in listing.text
        assert _audits("appointment.list") == 1


def test_the_slots_page_with_and_without_htmx_and_its_week_paging(app, client):
    clinic = make_clinic()
    with at(MONDAY_8AM):
        _sign_in(client, clinic.user)
        query = {"type_id": clinic.checkup.id}
        full = client.get(BOOK, query_string=query)
        assert full.status_code == 200 and "<html" in full.text and "Kind of appointment" in full.text
        assert "HX-Request" in full.headers.get("Vary", "")

        fragment = client.get(BOOK, query_string=query, headers={"HX-Request": "true"})
        assert fragment.status_code == 200
        assert "<html" not in fragment.text and "Kind of appointment" not in fragment.text
        assert fragment.text.lstrip().startswith('<section class="card appt-slots" id="slots"')
        assert "Tuesday 07 January" in fragment.text
        # The later week, as a plain link and as an htmx swap of the slots.
        assert 'data-hx-get="/portal/appointments/book?week=2031-01-13' in fragment.text
        assert 'href="/portal/appointments/book?week=2031-01-13' in fragment.text

        later = client.get(BOOK, query_string={**query, "week": "2031-01-13"}, headers={"HX-Request": "true"})
        assert "Monday 13 January" in later.text and "Tuesday 07 January" not in later.text
        assert "Earlier week" in later.text
        # Past the type's 28-day horizon nothing is offered; the page stops at the last bookable week.
        far = client.get(BOOK, query_string={**query, "week": "2031-06-02"})
        assert far.status_code == 200 and "Later week" not in far.text and "Monday 03 February" in far.text
        assert "Tuesday 04 February" not in far.text  # 28 days after Monday 6 January is Monday 3 February


def test_a_taken_time_answers_409_with_the_nearest_free_ones_as_buttons(app, client):
    clinic = make_clinic()
    with at(MONDAY_8AM):
        booking.hold_slot(
            clinic.actor(clinic.other_user),
            clinic.other_patient.id,
            clinic.video.id,
            clinic.doctor.id,
            TUESDAY_10,
        )
        _sign_in(client, clinic.user)
        taken = client.post(
            HOLD,
            data={
                "type_id": clinic.video.id,
                "provider_id": clinic.doctor.id,
                "starts_at": TUESDAY_10.isoformat(),
                "week": "2031-01-06",
            },
        )
        assert taken.status_code == 409
        assert "This time was just taken. Here are the nearest free ones." in taken.text
        assert "The nearest free times" in taken.text
        alternatives = taken.text.split("The nearest free times", 1)[1].split("</ul>", 1)[0]
        assert alternatives.count('name="starts_at"') == booking.ALTERNATIVES
        assert 'value="2031-01-07T09:00:00"' not in alternatives
        assert f'name="provider_id" value="{clinic.doctor.id}"' in alternatives
        assert _count(Appointment, Appointment.patient_id == clinic.patient.id) == 0

        # One of the alternatives holds.
        value = alternatives.split('name="starts_at" value="', 1)[1].split('"', 1)[0]
        held = client.post(
            HOLD, data={"type_id": clinic.video.id, "provider_id": clinic.doctor.id, "starts_at": value}
        )
        assert db.session.get(Appointment, _hold_id(held)).status == HELD


def test_any_provider_holds_whoever_is_free_and_bad_input_is_422(app, client):
    clinic = make_clinic()
    with at(MONDAY_8AM):
        booking.hold_slot(
            clinic.actor(clinic.other_user),
            clinic.other_patient.id,
            clinic.video.id,
            clinic.doctor.id,
            TUESDAY_10,
        )
        _sign_in(client, clinic.user)
        held = client.post(HOLD, data={"type_id": clinic.video.id, "starts_at": TUESDAY_10.isoformat()})
        hold = db.session.get(Appointment, _hold_id(held))
        assert hold.provider_id == clinic.nurse.id  # the doctor is taken at 10:00
        no_time = client.post(HOLD, data={"type_id": clinic.video.id, "starts_at": "not a time"})
        assert no_time.status_code == 422 and "Choose a time." in no_time.text
        no_type = client.post(HOLD, data={"type_id": "999999", "starts_at": TUESDAY_10.isoformat()})
        assert no_type.status_code == 422 and "Choose the kind of appointment." in no_type.text
        assert _count(Appointment, Appointment.patient_id == clinic.patient.id) == 1


def test_a_lapsed_hold_says_so_and_shows_the_times_again(app, client):
    clinic = make_clinic()
    with at(MONDAY_8AM):
        _sign_in(client, clinic.user)
        held = client.post(
            HOLD,
            data={
                "type_id": clinic.video.id,
                "provider_id": clinic.doctor.id,
                "starts_at": TUESDAY_10.isoformat(),
            },
        )
        hold_id = _hold_id(held)
    with at(MONDAY_8AM + timedelta(minutes=11)):
        late = client.post(f"/portal/appointments/hold/{hold_id}/confirm", data={"note": ""})
        assert late.status_code == 409
        assert "that time ran out" in late.text and "Please choose a time again." in late.text
        assert 'value="2031-01-07T09:00:00"' in late.text  # the freed time is offered again
        assert db.session.get(Appointment, hold_id).status == HELD  # nothing booked
        assert _count(Appointment, Appointment.status == BOOKED) == 0
        page = client.get(f"/portal/appointments/hold/{hold_id}")
        assert page.status_code == 200 and "that time ran out" in page.text


def test_choose_another_time_gives_the_hold_back(app, client):
    clinic = make_clinic()
    with at(MONDAY_8AM):
        _sign_in(client, clinic.user)
        held = client.post(
            HOLD,
            data={
                "type_id": clinic.video.id,
                "provider_id": clinic.doctor.id,
                "starts_at": TUESDAY_10.isoformat(),
            },
        )
        hold_id = _hold_id(held)
        back = client.post(f"/portal/appointments/hold/{hold_id}/release", data={})
        assert back.status_code == 303
        assert (
            f"/portal/appointments/book?type_id={clinic.video.id}&week=2031-01-06" in back.headers["Location"]
        )
        assert db.session.get(Appointment, hold_id).status == RELEASED
        page = client.get(back.headers["Location"])
        assert 'value="2031-01-07T09:00:00"' in page.text
