"""Issue 12's "done when" story in the browser: the patient on a 390 px phone, the front desk and the doctor
at 1280 px, each in their own browser, on one clinic's clock (Monday 6 Jan 2031, 08:00 in Berlin, ticking).

The patient books a video follow-up (type, provider, a free time, held, confirmed) and finds the
confirmation with its .ics in the outbox; moves it (the .ics keeps its UID, its SEQUENCE goes up); tries to
cancel a visit a few hours away and is told why, with the clinic's number to call, and a forced post is
refused too; joins the waitlist for an earlier day, and when the front desk cancels another patient's visit
on that day the patient is offered it in the portal and by email, accepts, and the list shows the new time.
The front desk checks a patient in, marks a no-show and overbooks with a reason; the doctor completes a visit
and starts its visit record. Screenshots of each step land in test-artifacts/appointments/.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime
from email import policy
from email.parser import BytesParser

import time_machine
from icalendar import Calendar
from playwright.sync_api import expect

from healthcrm.extensions import db
from healthcrm.scheduling import booking
from healthcrm.scheduling.models import Appointment
from tests.browser.conftest import ARTIFACTS, DESKTOP, PHONE
from tests.factories import make_patient
from tests.scheduling.scheduling_data import make_clinic, utc

# Monday 6 Jan 2031, 07:00 UTC = 08:00 in Berlin (winter time). Forward from any real date; never back.
NOW = datetime(2031, 1, 6, 7, 0, tzinfo=UTC)
OVERFLOW = "() => document.documentElement.scrollWidth - document.documentElement.clientWidth"
SHOTS = ARTIFACTS / "appointments"
FORCED_CANCEL = """async (url) => {
  const token = document.querySelector('input[name=csrf_token]').value;
  const body = new URLSearchParams({csrf_token: token, reason: 'x'});
  const answer = await fetch(url, {method: 'POST', body});
  return [answer.status, await answer.text()];
}"""


def _shot(page, name: str) -> None:
    SHOTS.mkdir(parents=True, exist_ok=True)
    width = page.viewport_size["width"]
    page.screenshot(path=str(SHOTS / f"{name}-{width}.png"), full_page=True)


def _fits(page, what: str) -> None:
    assert page.evaluate(OVERFLOW) <= 0, f"{what} scrolls sideways at 390 px"


def _emails(outbox_dir, to: str, subject: str) -> list:
    found = []
    for path in sorted(outbox_dir.glob("*.eml")):
        message = BytesParser(policy=policy.default).parsebytes(path.read_bytes())
        if to in str(message["To"]) and message["Subject"] == subject:
            found.append(message)
    return found


def _event_emailed(outbox_dir, to: str, subject: str, starts: datetime, timeout: float = 10.0):
    """The VEVENT (and the calendar's METHOD) of the email to `to` about the appointment at `starts`."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for message in _emails(outbox_dir, to, subject):
            for part in message.iter_attachments():
                if part.get_filename() and part.get_filename().endswith(".ics"):
                    calendar = Calendar.from_ical(part.get_content())
                    for event in calendar.walk("VEVENT"):
                        if event.decoded("DTSTART") == starts:
                            return str(calendar["METHOD"]), event
        time.sleep(0.1)
    raise AssertionError(f"no {subject!r} email with an .ics for {starts} was sent to {to}")


def _booked_with_desk(clinic, patient, kind, provider, starts_at):
    return booking.book(clinic.actor(clinic.desk), patient.id, kind.id, provider.id, starts_at)


def test_the_appointments_story_patient_front_desk_and_doctor(
    app, inline_jobs, new_context, live_server, sign_in, console, outbox_dir
):
    with time_machine.travel(NOW, tick=True):
        _story(app, new_context, live_server, sign_in, console, outbox_dir)


def _story(app, new_context, live_server, sign_in, console, outbox_dir):
    clinic = make_clinic()
    tenant, doctor, video, checkup = clinic.tenant, clinic.doctor, clinic.video, clinic.checkup
    mara, jonas = clinic.patient, clinic.other_patient
    lea = make_patient(tenant, first_name="Lea", last_name="Vogt")
    db.session.commit()
    # Mara's video visit at 14:00 today: inside its 24 h cancel cut-off.
    soon = _booked_with_desk(clinic, mara, video, doctor, utc(2031, 1, 6, 13, 0))
    # Jonas's video visit on Wednesday at 10:00, the earlier day Mara will hope for.
    wednesday = _booked_with_desk(clinic, jonas, video, doctor, utc(2031, 1, 8, 9, 0))
    # Today's morning at the front desk: Jonas at 09:00 (checked in, then completed), Lea at 09:30 (no-show).
    jonas_today = _booked_with_desk(clinic, jonas, checkup, doctor, utc(2031, 1, 6, 8, 0))
    lea_today = _booked_with_desk(clinic, lea, checkup, doctor, utc(2031, 1, 6, 8, 30))
    soon_id, wednesday_id, jonas_today_id, lea_today_id = soon.id, wednesday.id, jonas_today.id, lea_today.id

    # 1. The patient books a video follow-up with the doctor on Thursday at 10:00.
    phone = new_context(viewport=PHONE).new_page()
    sign_in(phone, clinic.user.email)
    phone.goto(f"{live_server}/portal")
    phone.locator(".portal-nav").get_by_role("link", name="Appointments").click()
    expect(phone.locator("h1")).to_have_text("Appointments")
    expect(phone.locator("main")).to_contain_text("Mon 06 Jan 2031, 14:00")
    _fits(phone, "the appointment list")
    _shot(phone, "1-list")
    phone.get_by_role("link", name="Book an appointment").click()
    phone.get_by_label("Video follow-up").check()
    phone.get_by_label("With", exact=True).select_option(label=doctor.full_name)
    phone.get_by_role("button", name="Show free times").click()
    expect(phone.locator("#slots")).to_contain_text("Europe/Berlin")
    _fits(phone, "the free times")
    _shot(phone, "1-free-times")
    phone.get_by_role("button", name="10:00 on Thursday 09 January").click()
    expect(phone.locator(".held-until")).to_contain_text("held for you until")
    _fits(phone, "the held time")
    _shot(phone, "1-held")
    phone.get_by_label("Reason for your visit").fill("Blood pressure follow-up")
    phone.get_by_role("button", name="Confirm").click()
    expect(phone.locator("main")).to_contain_text("Your appointment is booked.")
    expect(phone.locator("main")).to_contain_text("Thu 09 Jan 2031, 10:00")
    _fits(phone, "the booked appointment")
    _shot(phone, "1-booked")
    thursday = datetime(2031, 1, 9, 9, 0, tzinfo=UTC)
    method, booked = _event_emailed(outbox_dir, mara.email, "Your appointment is booked", thursday)
    assert method == "REQUEST"
    uid, first_sequence = str(booked["UID"]), int(booked["SEQUENCE"])
    assert uid

    # 2. Moves it to Friday at 11:00: the update's .ics is the same event, a later version of it.
    phone.get_by_role("link", name="Reschedule").click()
    expect(phone.locator("h1")).to_have_text("Move your appointment")
    phone.get_by_role("button", name="11:00 on Friday 10 January").click()
    expect(phone.locator(".held-until")).to_contain_text("held for you until")
    phone.get_by_role("button", name="Move my appointment").click()
    expect(phone.locator("main")).to_contain_text("Your appointment was moved.")
    expect(phone.locator("main")).to_contain_text("Fri 10 Jan 2031, 11:00")
    _fits(phone, "the moved appointment")
    _shot(phone, "2-moved")
    friday = datetime(2031, 1, 10, 10, 0, tzinfo=UTC)
    method, moved = _event_emailed(outbox_dir, mara.email, "Your appointment has moved", friday)
    assert method == "REQUEST"
    assert str(moved["UID"]) == uid
    assert int(moved["SEQUENCE"]) > first_sequence

    # 3. Today's 14:00 visit is inside the cut-off: the page says why, with the number to call.
    phone.goto(f"{live_server}/portal/appointments/{soon_id}")
    cutoff = phone.locator(".appt-cutoff")
    expect(cutoff).to_contain_text("24 hours")
    expect(cutoff.locator('a[href="tel:+49301234567"]')).to_have_text("+49 30 1234567")
    expect(phone.get_by_role("button", name="Cancel this appointment")).to_have_count(0)
    _fits(phone, "the appointment inside the cut-off")
    _shot(phone, "3-cutoff")
    console.allow("status of 422")
    console.allow("status of 409")  # the taken time at the front desk
    status, body = phone.evaluate(FORCED_CANCEL, f"{live_server}/portal/appointments/{soon_id}/cancel")
    assert status == 422
    assert "+49 30 1234567" in body
    phone.reload()
    expect(phone.locator(".facts")).to_contain_text("Booked")

    # 4. The waitlist: Tuesday or Wednesday with the doctor instead of Friday.
    phone.goto(f"{live_server}/portal/appointments/")
    phone.get_by_role("link", name="Join the waitlist").click()
    phone.get_by_label("Kind of appointment").select_option(label="Video follow-up (30 min, video)")
    phone.get_by_label("With", exact=True).select_option(label=doctor.full_name)
    phone.get_by_label("From").fill("2031-01-07")
    phone.get_by_label("Until").fill("2031-01-08")
    moving = phone.get_by_label("Move an appointment you have")
    moving.select_option(moving.locator("option", has_text="10 Jan 2031").get_attribute("value"))
    _shot(phone, "4-waitlist-form")
    phone.get_by_role("button", name="Join the waitlist").click()
    expect(phone.locator("main")).to_contain_text("You are on the waitlist")
    expect(phone.locator("#entries-heading + ul")).to_contain_text("Video follow-up")
    _fits(phone, "the waitlist")
    _shot(phone, "4-waitlist")

    # The front desk opens Wednesday's clinic day and cancels Jonas's visit, with a reason.
    front = new_context(viewport=DESKTOP).new_page()
    sign_in(front, clinic.desk.email)
    front.goto(f"{live_server}/schedule")
    expect(front.locator("#calendar h2")).to_contain_text("Monday 06 January 2031")
    front.get_by_label("Date").fill("2031-01-08")
    front.get_by_role("button", name="Show").click()
    expect(front.locator("#calendar h2")).to_contain_text("Wednesday 08 January 2031")
    _shot(front, "4-desk-wednesday")
    front.locator(f'a[href$="/schedule/appointments/{wednesday_id}"]').click()
    expect(front.locator("h1")).to_contain_text(jonas.full_name)
    front.get_by_label("Reason").fill("Jonas called: he is travelling that week")
    front.get_by_role("button", name="Cancel the appointment").click()
    expect(front.locator("main")).to_contain_text("Appointment cancelled.")
    expect(front.locator(".appt-facts")).to_contain_text("he is travelling")

    # The waiting patient is offered it: in the portal and by email.
    offer_email = None
    deadline = time.monotonic() + 10
    while offer_email is None and time.monotonic() < deadline:
        found = _emails(outbox_dir, mara.email, "An earlier appointment time is free")
        offer_email = found[0] if found else None
        time.sleep(0.1)
    assert offer_email is not None, "no waitlist offer was emailed"
    assert "Wed 08 Jan 2031, 10:00" in offer_email.get_body(preferencelist=("plain",)).get_content()
    phone.goto(f"{live_server}/portal/notifications")
    expect(phone.locator("main")).to_contain_text("An earlier time came free: Wed 08 Jan 2031, 10:00")
    _fits(phone, "the notifications")
    _shot(phone, "4-notification")
    phone.goto(f"{live_server}/portal/waitlist/")
    phone.get_by_role("link", name="See the time held for you").click()
    expect(phone.locator("h1")).to_have_text("A time came free")
    expect(phone.locator("main")).to_contain_text("Wed 08 Jan 2031, 10:00")
    _fits(phone, "the offer")
    _shot(phone, "4-offer")
    phone.get_by_role("button", name="Accept this time").click()
    expect(phone.locator("h1")).to_have_text("This time is yours")
    phone.goto(f"{live_server}/portal/appointments/")
    upcoming = phone.locator("#upcoming-title + ul")
    expect(upcoming).to_contain_text("Wed 08 Jan 2031, 10:00")
    expect(upcoming).not_to_contain_text("Fri 10 Jan 2031")
    _fits(phone, "the appointment list after the offer")
    _shot(phone, "4-list-after-offer")

    # 5. Today at the front desk: Jonas checks in, Lea does not come, Lea is overbooked at 14:00.
    front.goto(f"{live_server}/schedule")
    front.locator(f'a[href$="/schedule/appointments/{jonas_today_id}"]').click()
    front.get_by_role("button", name="Check in").click()
    expect(front.locator("main")).to_contain_text("Checked in.")
    front.get_by_role("link", name="← The clinic's day").click()
    front.locator(f'a[href$="/schedule/appointments/{lea_today_id}"]').click()
    front.get_by_role("button", name="No-show").click()
    expect(front.locator("main")).to_contain_text("Marked as a no-show.")
    expect(front.locator(".no-show-count")).to_have_text("1")
    front.get_by_role("link", name="← The clinic's day").click()
    expect(front.locator(".status-checked_in")).to_contain_text(jonas.full_name)
    expect(front.locator(".status-no_show .no-shows")).to_have_text("1 no-show")
    _shot(front, "5-desk-today")

    front.get_by_role("link", name="Book an appointment").click()
    front.get_by_label("Find the patient").fill("Vogt")
    front.get_by_role("button", name="Search").click()
    front.get_by_role("link", name=lea.full_name).click()
    front.get_by_label("Kind").select_option(label="Check-up (20 min)")
    front.get_by_label("With", exact=True).select_option(label=doctor.full_name)
    front.get_by_role("button", name="Show free times").click()
    expect(front.locator("main")).to_contain_text("1 no-show")
    front.get_by_label("Time (Europe/Berlin)").fill("14:00")
    front.get_by_role("button", name="Book", exact=True).click()
    expect(front.locator(".alternatives")).to_contain_text("This time was just taken")
    overbook = front.locator("fieldset.overbook")
    expect(overbook).to_be_visible()
    _shot(front, "5-taken")
    front.get_by_role("button", name="Overbook anyway").click()  # without a reason: refused
    expect(front.get_by_label("Reason")).to_have_attribute("aria-invalid", "true")
    front.get_by_label("Reason").fill("Acute back pain, the doctor agreed to squeeze her in")
    front.get_by_role("button", name="Overbook anyway").click()
    expect(front.locator("main")).to_contain_text("Appointment booked (overbooked).")
    expect(front.locator(".appt-facts")).to_contain_text("Acute back pain")
    _shot(front, "5-overbooked")
    overbooked = db.session.scalar(
        db.select(Appointment).where(Appointment.tenant_id == tenant.id, Appointment.overbooked.is_(True))
    )
    assert overbooked is not None and overbooked.patient_id == lea.id
    assert overbooked.starts_at == utc(2031, 1, 6, 13, 0)

    # 6. The doctor completes Jonas's visit and starts its record: patient, time and doctor filled in.
    desk = new_context(viewport=DESKTOP).new_page()
    sign_in(desk, doctor.email)
    desk.goto(f"{live_server}/schedule/appointments/{jonas_today_id}")
    desk.get_by_role("button", name="Complete").click()
    expect(desk.locator("main")).to_contain_text("Completed.")
    _shot(desk, "6-completed")
    desk.get_by_role("button", name="Start a visit record").click()
    desk.wait_for_url(lambda url: "/records/" in url)
    expect(desk.locator("main")).to_contain_text(jonas.full_name)
    expect(desk.get_by_label("Visit date and time")).to_have_value("2031-01-06T09:00")
    expect(desk.locator("#doctor_id option:checked")).to_have_text(doctor.full_name)
    _shot(desk, "6-visit-record")
    console.assert_clean()
