"""The clinic export on a schedule: the next slot on the clinic's clock (weeks, months, clock changes), the
admin's form, and the sweep that starts each due slot's export once, however many run at once."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime
from email import message_from_bytes
from email.policy import default

import pytest
from sqlalchemy import func, select

from healthcrm.audit.models import AuditEvent
from healthcrm.audit.services import Actor
from healthcrm.clock import to_clinic_time
from healthcrm.errors import NotAllowed
from healthcrm.extensions import db
from healthcrm.jobs.models import FAILED, FINISHED, Job
from healthcrm.tenant_export import services
from healthcrm.tenant_export.models import ExportSchedule
from healthcrm.tenant_export.schedule import (
    Rule,
    next_run_after,
    run_scheduled_exports,
    save_schedule,
    start_due_export,
)
from tests.concurrency import parallel
from tests.factories import login, make_tenant, make_user

BERLIN = "Europe/Berlin"
NEW_YORK = "America/New_York"
LOS_ANGELES = "America/Los_Angeles"
MONDAY, WEDNESDAY, SUNDAY = 0, 2, 6


def utc(*parts: int) -> datetime:
    """A naive UTC time, as the database keeps it."""
    return datetime(*parts)


def weekly(day: int, hour: int) -> Rule:
    return Rule("weekly", weekday=day, hour=hour)


def monthly(day: int, hour: int) -> Rule:
    return Rule("monthly", month_day=day, hour=hour)


def wall(value: datetime, zone: str) -> str:
    return to_clinic_time(value, zone).strftime("%a %Y-%m-%d %H:%M %Z")


# --- the next slot -----------------------------------------------------------------------------------------


def test_off_has_no_next_slot():
    assert next_run_after(Rule("off"), BERLIN, utc(2027, 1, 6, 12)) is None


def test_weekly_is_the_next_chosen_weekday_at_the_clinics_hour():
    # Wednesday 6 January 2027, 12:00 UTC; Berlin is on UTC+1 in winter.
    slot = next_run_after(weekly(MONDAY, 4), BERLIN, utc(2027, 1, 6, 12))
    assert slot == utc(2027, 1, 11, 3)
    assert wall(slot, BERLIN) == "Mon 2027-01-11 04:00 CET"
    # Exactly at a slot, the next one is a week later; just before it, it is that slot.
    assert next_run_after(weekly(MONDAY, 4), BERLIN, slot) == utc(2027, 1, 18, 3)
    assert next_run_after(weekly(MONDAY, 4), BERLIN, utc(2027, 1, 11, 2, 59)) == slot
    # Later the same weekday: next week.
    assert next_run_after(weekly(WEDNESDAY, 9), BERLIN, utc(2027, 1, 6, 12)) == utc(2027, 1, 13, 8)


def test_the_weekday_is_the_clinics_not_utcs():
    # Sunday 10 January 2027, 21:00 in Los Angeles is already Monday 05:00 in UTC.
    after = utc(2027, 1, 11, 5)
    slot = next_run_after(weekly(MONDAY, 22), LOS_ANGELES, after)
    assert wall(slot, LOS_ANGELES) == "Mon 2027-01-11 22:00 PST"
    assert slot == utc(2027, 1, 12, 6)  # a Tuesday in UTC


def test_weekly_keeps_the_clinics_hour_across_the_spring_clock_change():
    # Berlin moves from 02:00 CET to 03:00 CEST on Sunday 28 March 2027: UTC hours change, local ones do not.
    first = next_run_after(weekly(SUNDAY, 9), BERLIN, utc(2027, 3, 20, 12))
    second = next_run_after(weekly(SUNDAY, 9), BERLIN, first)
    assert (first, second) == (utc(2027, 3, 21, 8), utc(2027, 3, 28, 7))
    assert [wall(s, BERLIN) for s in (first, second)] == [
        "Sun 2027-03-21 09:00 CET",
        "Sun 2027-03-28 09:00 CEST",
    ]


def test_an_hour_the_clocks_skip_runs_when_they_have_jumped_and_then_as_usual():
    # 02:00 does not exist in Berlin on 28 March 2027: the export runs at 03:00 CEST (the same instant as
    # 02:00 CET would have been), once, and the week after at 02:00 again.
    slot = next_run_after(weekly(SUNDAY, 2), BERLIN, utc(2027, 3, 27, 12))
    assert slot == utc(2027, 3, 28, 1)
    assert wall(slot, BERLIN) == "Sun 2027-03-28 03:00 CEST"
    following = next_run_after(weekly(SUNDAY, 2), BERLIN, slot)
    assert wall(following, BERLIN) == "Sun 2027-04-04 02:00 CEST"


def test_an_hour_the_clocks_repeat_runs_once():
    # 02:00-03:00 happens twice in Berlin on 31 October 2027 (CEST, then CET): the first one counts.
    slot = next_run_after(weekly(SUNDAY, 2), BERLIN, utc(2027, 10, 30, 12))
    assert slot == utc(2027, 10, 31, 0)
    assert wall(slot, BERLIN) == "Sun 2027-10-31 02:00 CEST"
    # After the first 02:00, and after the second one too, the next slot is a week later, on CET.
    for after in (slot, utc(2027, 10, 31, 1), utc(2027, 10, 31, 1, 30)):
        assert next_run_after(weekly(SUNDAY, 2), BERLIN, after) == utc(2027, 11, 7, 1)


def test_monthly_in_new_york_across_its_spring_clock_change():
    # New York skips 02:00-03:00 on Sunday 14 March 2027.
    rule = monthly(14, 2)
    slot = next_run_after(rule, NEW_YORK, utc(2027, 2, 20, 12))
    assert slot == utc(2027, 3, 14, 7)
    assert wall(slot, NEW_YORK) == "Sun 2027-03-14 03:00 EDT"
    assert wall(next_run_after(rule, NEW_YORK, slot), NEW_YORK) == "Wed 2027-04-14 02:00 EDT"
    # Autumn (7 November 2027, 01:00-02:00 twice): a 01:00 export runs at the first one only.
    autumn = next_run_after(monthly(7, 1), NEW_YORK, utc(2027, 10, 20))
    assert wall(autumn, NEW_YORK) == "Sun 2027-11-07 01:00 EDT"
    assert wall(next_run_after(monthly(7, 1), NEW_YORK, autumn), NEW_YORK) == "Tue 2027-12-07 01:00 EST"


def test_monthly_runs_every_month_the_28th_included_and_over_the_years_end():
    rule = monthly(28, 4)
    slots, after = [], utc(2027, 1, 29)
    for _ in range(3):
        after = next_run_after(rule, BERLIN, after)
        slots.append(wall(after, BERLIN))
    assert slots == ["Sun 2027-02-28 04:00 CET", "Sun 2027-03-28 04:00 CEST", "Wed 2027-04-28 04:00 CEST"]
    assert (
        wall(next_run_after(monthly(1, 4), BERLIN, utc(2027, 12, 15)), BERLIN) == "Sat 2028-01-01 04:00 CET"
    )
    # Past this month's day: next month's.
    assert wall(next_run_after(monthly(5, 4), BERLIN, utc(2027, 1, 20)), BERLIN) == "Fri 2027-02-05 04:00 CET"


@pytest.fixture
def server_zone(monkeypatch):
    """Run a test with the server's own zone set far from the clinics' (the process's TZ)."""

    def use(zone: str) -> None:
        monkeypatch.setenv("TZ", zone)
        time.tzset()

    yield use
    monkeypatch.undo()
    time.tzset()


def test_the_servers_own_zone_changes_nothing(server_zone):
    cases = [
        (weekly(MONDAY, 4), BERLIN, utc(2027, 1, 6, 12)),
        (weekly(SUNDAY, 2), BERLIN, utc(2027, 3, 27, 12)),
        (monthly(14, 2), NEW_YORK, utc(2027, 2, 20, 12)),
        (weekly(MONDAY, 22), LOS_ANGELES, utc(2027, 1, 11, 5)),
    ]
    expected = [next_run_after(*case) for case in cases]
    for zone in ("Asia/Kolkata", "Pacific/Auckland", "America/Sao_Paulo"):
        server_zone(zone)
        assert time.localtime(0).tm_gmtoff != 0
        assert [next_run_after(*case) for case in cases] == expected


# --- the admin's form --------------------------------------------------------------------------------------


@pytest.fixture
def clinic(app):
    tenant = make_tenant("Riverside", timezone=BERLIN)
    admins = [make_user(tenant, "admin"), make_user(tenant, "admin")]
    make_user(tenant, "admin", active=False)  # gets nothing
    return {"tenant": tenant, "admins": admins, "doctor": make_user(tenant, "doctor")}


def _schedule(tenant_id: int) -> ExportSchedule | None:
    db.session.expire_all()
    return db.session.scalar(select(ExportSchedule).where(ExportSchedule.tenant_id == tenant_id))


def _events(action: str) -> list[AuditEvent]:
    return list(db.session.scalars(select(AuditEvent).where(AuditEvent.action == action)))


def _count(model, *where) -> int:
    return db.session.scalar(select(func.count()).select_from(model).where(*where))


def _admin(clinic) -> Actor:
    admin = clinic["admins"][0]
    return Actor(tenant_id=admin.tenant_id, user_id=admin.id, role="admin")


WEDNESDAY_NOON = datetime(2027, 1, 6, 12, 0, tzinfo=UTC)


def test_an_admin_schedules_the_export_and_sees_the_next_one_on_the_clinics_clock(
    app, client, clinic, time_machine
):
    time_machine.move_to(WEDNESDAY_NOON, tick=False)
    login(client, clinic["admins"][0].email)
    page = client.get("/admin/export").get_data(as_text=True)
    assert "Export on a schedule" in page and "None: the schedule is off." in page
    assert "February has 28 days" in page  # why the month's day stops at the 28th

    saved = client.post("/admin/export/schedule", data={"frequency": "weekly", "weekday": "0", "hour": "5"})
    assert saved.status_code == 303
    schedule = _schedule(clinic["tenant"].id)
    assert (schedule.frequency, schedule.weekday, schedule.hour) == ("weekly", MONDAY, 5)
    assert schedule.next_run_at == utc(2027, 1, 11, 4)
    page = client.get(saved.headers["Location"]).get_data(as_text=True)
    assert "Export schedule saved." in page
    assert "Weekly, on Mondays at 05:00" in page
    assert "Mon 11 Jan 2027, 05:00 (Europe/Berlin)" in page
    [event] = _events("tenant_export.schedule_changed")
    assert json.loads(event.changed_fields) == ["frequency", "hour"]
    assert (event.actor_user_id, event.tenant_id) == (clinic["admins"][0].id, clinic["tenant"].id)

    # Monthly: only what changed is named; the weekday is kept for a switch back.
    client.post("/admin/export/schedule", data={"frequency": "monthly", "month_day": "28", "hour": "5"})
    schedule = _schedule(clinic["tenant"].id)
    assert (schedule.frequency, schedule.weekday, schedule.month_day) == ("monthly", MONDAY, 28)
    assert wall(schedule.next_run_at, BERLIN) == "Thu 2027-01-28 05:00 CET"
    assert json.loads(_events("tenant_export.schedule_changed")[-1].changed_fields) == [
        "frequency",
        "month_day",
    ]

    client.post("/admin/export/schedule", data={"frequency": "off"})
    schedule = _schedule(clinic["tenant"].id)
    assert schedule.frequency == "off" and schedule.next_run_at is None
    assert "None: the schedule is off." in client.get("/admin/export").get_data(as_text=True)


@pytest.mark.parametrize(
    ("form", "field", "message"),
    [
        ({"frequency": "daily", "hour": "4"}, "frequency", "Choose how often: off, weekly or monthly."),
        ({"frequency": "monthly", "month_day": "31", "hour": "4"}, "month_day", "from 1 to 28"),
        ({"frequency": "monthly", "month_day": "29", "hour": "4"}, "month_day", "from 1 to 28"),
        ({"frequency": "monthly", "month_day": "0", "hour": "4"}, "month_day", "from 1 to 28"),
        ({"frequency": "monthly", "month_day": "", "hour": "4"}, "month_day", "from 1 to 28"),
        ({"frequency": "weekly", "weekday": "7", "hour": "4"}, "weekday", "Choose a day of the week."),
        ({"frequency": "weekly", "weekday": "monday", "hour": "4"}, "weekday", "Choose a day of the week."),
        (
            {"frequency": "weekly", "weekday": "1", "hour": "24"},
            "hour",
            "Choose an hour from 00:00 to 23:00.",
        ),
        (
            {"frequency": "weekly", "weekday": "1", "hour": "-1"},
            "hour",
            "Choose an hour from 00:00 to 23:00.",
        ),
        ({"weekday": "1", "hour": "4"}, "frequency", "Choose how often"),
    ],
)
def test_a_schedule_the_form_cannot_take_says_why_and_changes_nothing(
    app, client, clinic, time_machine, form, field, message
):
    time_machine.move_to(WEDNESDAY_NOON, tick=False)
    save_schedule(_admin(clinic), {"frequency": "weekly", "weekday": "2", "hour": "4"})
    before = _schedule(clinic["tenant"].id)
    kept = (before.frequency, before.weekday, before.month_day, before.hour, before.next_run_at)
    events = _count(AuditEvent, AuditEvent.action == "tenant_export.schedule_changed")
    login(client, clinic["admins"][0].email)

    response = client.post("/admin/export/schedule", data=form)
    assert response.status_code == 422
    page = response.get_data(as_text=True)
    assert "Nothing was saved:" in page and message in page
    assert f'id="{field}"' in page and "aria-invalid" in page
    after = _schedule(clinic["tenant"].id)
    assert (after.frequency, after.weekday, after.month_day, after.hour, after.next_run_at) == kept
    assert _count(AuditEvent, AuditEvent.action == "tenant_export.schedule_changed") == events


def test_the_form_in_place_with_htmx_and_without(app, client, clinic, time_machine):
    time_machine.move_to(WEDNESDAY_NOON, tick=False)
    login(client, clinic["admins"][0].email)
    htmx = {"HX-Request": "true"}
    bad = client.post(
        "/admin/export/schedule", data={"frequency": "monthly", "month_day": "30"}, headers=htmx
    )
    assert bad.status_code == 422
    fragment = bad.get_data(as_text=True)
    assert fragment.lstrip().startswith('<section class="card export-schedule" id="schedule"')
    assert "<html" not in fragment
    assert "from 1 to 28" in fragment and 'value="30"' in fragment  # what was typed stays in the form
    good = client.post(
        "/admin/export/schedule", data={"frequency": "monthly", "month_day": "3", "hour": "23"}, headers=htmx
    )
    assert good.status_code == 200 and "HX-Request" in good.headers["Vary"]
    fragment = good.get_data(as_text=True)
    assert "Export schedule saved." in fragment and "<html" not in fragment
    assert "Wed 03 Feb 2027, 23:00 (Europe/Berlin)" in fragment


def test_saving_the_same_schedule_again_keeps_a_missed_slot_due_and_audits_nothing(clinic, time_machine):
    time_machine.move_to(WEDNESDAY_NOON, tick=False)
    rule = {"frequency": "weekly", "weekday": "0", "hour": "4"}
    slot = save_schedule(_admin(clinic), rule).next_run_at
    time_machine.move_to(datetime(2027, 1, 20, 12, tzinfo=UTC), tick=False)  # the slot was missed
    assert save_schedule(_admin(clinic), rule).next_run_at == slot
    assert len(_events("tenant_export.schedule_changed")) == 1


def test_only_admins_see_or_change_the_schedule(app, client, clinic):
    for role in ("doctor", "nurse", "front_desk", "coach"):
        other = app.test_client()
        login(other, make_user(clinic["tenant"], role).email)
        assert other.get("/admin/export").status_code == 403
        refused = other.post(
            "/admin/export/schedule", data={"frequency": "weekly", "weekday": "0", "hour": "4"}
        )
        assert refused.status_code == 403
    assert app.test_client().post("/admin/export/schedule", data={"frequency": "off"}).status_code in (
        302,
        303,
    )
    assert _schedule(clinic["tenant"].id) is None
    doctor = clinic["doctor"]
    with pytest.raises(NotAllowed):
        save_schedule(
            Actor(tenant_id=doctor.tenant_id, user_id=doctor.id, role="doctor"), {"frequency": "off"}
        )


# --- the sweep ---------------------------------------------------------------------------------------------


def _mails(outbox_dir) -> list:
    return [
        message_from_bytes(path.read_bytes(), policy=default) for path in sorted(outbox_dir.glob("*.eml"))
    ]


def _export_jobs(tenant_id: int) -> list[Job]:
    db.session.expire_all()
    query = select(Job).where(Job.kind == services.KIND, Job.tenant_id == tenant_id).order_by(Job.created_at)
    return list(db.session.scalars(query))


def test_the_sweep_starts_the_due_export_once_and_every_admin_gets_the_link(
    app, client, clinic, inline_jobs, outbox_dir, time_machine
):
    time_machine.move_to(WEDNESDAY_NOON, tick=False)
    schedule = save_schedule(_admin(clinic), {"frequency": "weekly", "weekday": "0", "hour": "4"})
    schedule_id, slot = schedule.id, schedule.next_run_at
    assert run_scheduled_exports() == "0 scheduled exports started, 0 failures reported"  # not due yet
    assert _export_jobs(clinic["tenant"].id) == []

    time_machine.move_to(datetime(2027, 1, 11, 3, 7, tzinfo=UTC), tick=False)  # Monday 04:07 in Berlin
    assert run_scheduled_exports() == "1 scheduled exports started, 0 failures reported"
    assert run_scheduled_exports() == "0 scheduled exports started, 0 failures reported"
    [job] = _export_jobs(clinic["tenant"].id)
    assert (job.status, job.args, job.user_id) == (FINISHED, [schedule_id], None)
    assert job.label == "Scheduled export of all the clinic's data"
    schedule = _schedule(clinic["tenant"].id)
    assert (schedule.last_run_at, schedule.last_job_id) == (slot, job.id)
    assert schedule.next_run_at == utc(2027, 1, 18, 3)
    [event] = _events("tenant_export.scheduled_start")
    assert (event.actor_role, event.actor_user_id, event.tenant_id) == ("system", None, clinic["tenant"].id)
    assert event.resource_id == job.id

    mails = _mails(outbox_dir)
    assert sorted(str(mail["To"]) for mail in mails) == sorted(admin.email for admin in clinic["admins"])
    for mail in mails:
        assert str(mail["Subject"]) == "Your data export is ready"
        body = mail.get_body(("plain",)).get_content()
        assert "The scheduled export of Riverside" in body
        assert "(weekly, on Mondays at 04:00, clinic time)" in body
        assert f"/admin/export/{job.id}/download" in body and "24 hours" in body

    login(client, clinic["admins"][1].email)  # any admin downloads it
    assert client.get(f"/admin/export/{job.id}/download").status_code == 200
    page = client.get("/admin/export").get_data(as_text=True)
    assert "Mon 11 Jan 2027, 04:00:" in page and "Ready" in page
    assert "Mon 18 Jan 2027, 04:00 (Europe/Berlin)" in page


def test_two_sweeps_at_once_start_one_export(app, clinic, inline_jobs, time_machine):
    time_machine.move_to(WEDNESDAY_NOON, tick=False)
    save_schedule(_admin(clinic), {"frequency": "weekly", "weekday": "0", "hour": "4"})
    time_machine.move_to(datetime(2027, 1, 11, 3, 5, tzinfo=UTC), tick=False)
    tenant_id = clinic["tenant"].id

    def due(_index: int):
        # Each sweep has read the due slot before either takes it.
        row = db.session.scalar(select(ExportSchedule).where(ExportSchedule.tenant_id == tenant_id))
        return row.id, row.tenant_id, row.next_run_at

    outcomes = parallel(2, app, lambda found: start_due_export(*found, now=utc(2027, 1, 11, 3, 5)), load=due)
    assert sorted(outcomes) == [False, True]
    assert len(_export_jobs(tenant_id)) == 1
    assert len(_events("tenant_export.scheduled_start")) == 1

    # And whole sweeps, on the next slot.
    time_machine.move_to(datetime(2027, 1, 18, 3, 5, tzinfo=UTC), tick=False)
    results = parallel(2, app, lambda _i: run_scheduled_exports())
    assert sorted(results) == [
        "0 scheduled exports started, 0 failures reported",
        "1 scheduled exports started, 0 failures reported",
    ]
    assert len(_export_jobs(tenant_id)) == 2


def test_a_week_of_missed_slots_starts_one_export(app, clinic, inline_jobs, time_machine):
    time_machine.move_to(WEDNESDAY_NOON, tick=False)
    first = save_schedule(_admin(clinic), {"frequency": "weekly", "weekday": "0", "hour": "4"}).next_run_at
    # No worker ran for seven weeks (Monday 4 January 2027 to Wednesday 3 March): one export, now.
    time_machine.move_to(datetime(2027, 3, 3, 9, tzinfo=UTC), tick=False)
    assert run_scheduled_exports() == "1 scheduled exports started, 0 failures reported"
    assert run_scheduled_exports() == "0 scheduled exports started, 0 failures reported"
    assert len(_export_jobs(clinic["tenant"].id)) == 1
    schedule = _schedule(clinic["tenant"].id)
    assert schedule.last_run_at == first
    assert wall(schedule.next_run_at, BERLIN) == "Mon 2027-03-08 04:00 CET"  # the first after now


def test_another_clinics_schedule_is_untouched(app, clinic, inline_jobs, time_machine):
    time_machine.move_to(WEDNESDAY_NOON, tick=False)
    save_schedule(_admin(clinic), {"frequency": "weekly", "weekday": "0", "hour": "4"})
    other = make_tenant("Lakeside", timezone=NEW_YORK)
    other_admin = make_user(other, "admin")
    other_actor = Actor(tenant_id=other.id, user_id=other_admin.id, role="admin")
    theirs = save_schedule(other_actor, {"frequency": "monthly", "month_day": "20", "hour": "4"})
    theirs_before = (theirs.next_run_at, theirs.last_run_at, theirs.last_job_id, theirs.updated_at)
    time_machine.move_to(datetime(2027, 1, 11, 3, 5, tzinfo=UTC), tick=False)
    assert run_scheduled_exports() == "1 scheduled exports started, 0 failures reported"
    theirs = _schedule(other.id)
    assert (theirs.next_run_at, theirs.last_run_at, theirs.last_job_id, theirs.updated_at) == theirs_before
    assert _export_jobs(other.id) == []
    # One clinic's admin saving changes only their own row.
    save_schedule(_admin(clinic), {"frequency": "off"})
    assert _schedule(other.id).frequency == "monthly"


def test_a_failed_scheduled_export_is_told_to_every_admin_once(
    app, client, clinic, inline_jobs, outbox_dir, time_machine, monkeypatch
):
    def broken(*_args, **_kwargs):
        raise OSError("No space left on device")

    monkeypatch.setattr(services, "build_archive", broken)
    time_machine.move_to(WEDNESDAY_NOON, tick=False)
    save_schedule(_admin(clinic), {"frequency": "monthly", "month_day": "1", "hour": "4"})
    time_machine.move_to(datetime(2027, 2, 1, 3, 5, tzinfo=UTC), tick=False)
    assert run_scheduled_exports() == "1 scheduled exports started, 1 failures reported"
    assert run_scheduled_exports() == "0 scheduled exports started, 0 failures reported"
    [job] = _export_jobs(clinic["tenant"].id)
    assert job.status == FAILED and "No space left" in job.error
    mails = _mails(outbox_dir)
    assert sorted(str(mail["To"]) for mail in mails) == sorted(admin.email for admin in clinic["admins"])
    for mail in mails:
        assert str(mail["Subject"]) == "A scheduled data export failed"
        body = mail.get_body(("plain",)).get_content()
        assert "(monthly, on the 1st at 04:00, clinic time) failed" in body
        assert f"/admin/export/{job.id}" in body
    assert _schedule(clinic["tenant"].id).failure_reported

    login(client, clinic["admins"][0].email)
    page = client.get("/admin/export").get_data(as_text=True)
    assert "Failed" in page and "(the admins were emailed)" in page
    assert "No space left on device" in client.get(f"/admin/export/{job.id}").get_data(as_text=True)

    # The next slot's export works again, and a new failure would be told again.
    monkeypatch.undo()
    time_machine.move_to(datetime(2027, 3, 1, 3, 5, tzinfo=UTC), tick=False)
    assert run_scheduled_exports() == "1 scheduled exports started, 0 failures reported"
    assert not _schedule(clinic["tenant"].id).failure_reported
    assert [j.status for j in _export_jobs(clinic["tenant"].id)] == [FAILED, FINISHED]


def test_a_slot_an_admin_changed_meanwhile_is_not_started(clinic, inline_jobs, time_machine):
    time_machine.move_to(WEDNESDAY_NOON, tick=False)
    schedule = save_schedule(_admin(clinic), {"frequency": "weekly", "weekday": "0", "hour": "4"})
    schedule_id, slot = schedule.id, schedule.next_run_at
    time_machine.move_to(datetime(2027, 1, 11, 3, 5, tzinfo=UTC), tick=False)
    save_schedule(_admin(clinic), {"frequency": "weekly", "weekday": "1", "hour": "4"})  # now Tuesdays
    assert start_due_export(schedule_id, clinic["tenant"].id, slot, utc(2027, 1, 11, 3, 5)) is False
    assert _export_jobs(clinic["tenant"].id) == []
