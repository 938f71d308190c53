"""Free-slot generation, the pure part (`slots.provider_slots`): buffers, notice, horizon, exceptions and
closures, and the local wall clock on the days the clocks move. No database, no "now": every input given."""

from __future__ import annotations

from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from healthcrm.scheduling.models import EXTRA_HOURS, TIME_OFF
from healthcrm.scheduling.slots import Exception_, day_intervals, nearest, provider_slots

BERLIN = ZoneInfo("Europe/Berlin")
NEW_YORK = ZoneInfo("America/New_York")
TUESDAY = date(2031, 1, 7)  # winter: Berlin is UTC+1
MORNING = {1: [(time(9), time(12))]}  # Tuesdays 09:00–12:00


def utc(*args) -> datetime:
    return datetime(*args)  # naive UTC, as stored


def slots(
    week=MORNING,
    *,
    day=TUESDAY,
    last=None,
    busy=(),
    minutes=30,
    before=0,
    after=0,
    earliest=None,
    exceptions=None,
    closed=(),
    zone=BERLIN,
):
    return provider_slots(
        provider_id=1,
        week=week,
        exceptions=exceptions or {},
        closed_days=set(closed),
        busy=sorted(busy),
        duration=timedelta(minutes=minutes),
        buffer_before=timedelta(minutes=before),
        buffer_after=timedelta(minutes=after),
        zone=zone,
        earliest=earliest or utc(2000, 1, 1),
        first_day=day,
        last_day=last or day,
    )


def local_starts(found, zone=BERLIN) -> list[str]:
    return [s.starts_at.replace(tzinfo=ZoneInfo("UTC")).astimezone(zone).strftime("%H:%M") for s in found]


def test_a_morning_gives_half_hour_slots_in_local_time():
    assert local_starts(slots()) == ["09:00", "09:30", "10:00", "10:30", "11:00", "11:30"]
    # 09:00 in Berlin in January is 08:00 UTC.
    assert slots()[0].starts_at == utc(2031, 1, 7, 8, 0)


def test_existing_appointments_block_their_time_and_buffers():
    # 10:00–10:30 local is booked with a 10-minute buffer after it (09:00–09:40 UTC blocked).
    booked = (utc(2031, 1, 7, 9, 0), utc(2031, 1, 7, 9, 40))
    assert local_starts(slots(busy=[booked])) == ["09:00", "09:30", "11:00", "11:30"]
    # A new appointment's own buffer counts too: 25 minutes before 11:00 reaches back into the booking's.
    assert local_starts(slots(busy=[booked], before=25)) == ["09:00", "09:30", "11:30"]
    # 30 minutes after each: 09:30's buffer runs into the booking at 10:00.
    assert local_starts(slots(busy=[booked], after=30)) == ["09:00", "11:00", "11:30"]


def test_the_notice_hides_what_starts_too_soon():
    # "Now" plus the notice is 10:15 local (09:15 UTC): the first offered time is 10:30.
    assert local_starts(slots(earliest=utc(2031, 1, 7, 9, 15))) == ["10:30", "11:00", "11:30"]


def test_a_longer_visit_steps_every_thirty_minutes_and_must_end_in_the_interval():
    assert local_starts(slots(minutes=60)) == ["09:00", "09:30", "10:00", "10:30", "11:00"]
    assert local_starts(slots(minutes=20)) == [
        "09:00", "09:20", "09:40", "10:00", "10:20", "10:40", "11:00", "11:20", "11:40",
    ]  # fmt: skip


def test_time_off_extra_hours_and_closures():
    off_all_day = {TUESDAY: [Exception_(TIME_OFF, None, None)]}
    assert slots(exceptions=off_all_day) == []
    off_at_ten = {TUESDAY: [Exception_(TIME_OFF, time(10), time(11))]}
    assert local_starts(slots(exceptions=off_at_ten)) == ["09:00", "09:30", "11:00", "11:30"]
    evening = {TUESDAY: [Exception_(EXTRA_HOURS, time(18), time(19))]}
    assert local_starts(slots(exceptions=evening))[-2:] == ["18:00", "18:30"]
    # Extra hours on a day with no weekly hours at all (a Saturday).
    saturday = date(2031, 1, 11)
    extra = {saturday: [Exception_(EXTRA_HOURS, time(9), time(10))]}
    assert local_starts(slots(day=saturday, exceptions=extra)) == ["09:00", "09:30"]
    assert slots(closed=[TUESDAY]) == []
    assert slots(closed=[TUESDAY], exceptions=evening) == []  # a closure wins over extra hours


def test_a_range_of_days_follows_the_week():
    # Tuesday to the next Tuesday: two Tuesdays of six slots.
    found = slots(last=TUESDAY + timedelta(days=7))
    assert len(found) == 12 and {s.starts_at.date() for s in found} == {TUESDAY, TUESDAY + timedelta(days=7)}


def test_the_clocks_moving_keep_the_wall_clock_and_skip_the_missing_hour():
    # New York, Sunday 9 March 2031: 02:00 jumps to 03:00. Hours 01:00–04:00 (two real hours) give 01:00,
    # 01:30 (ending at 03:00: thirty real minutes), 03:00 and 03:30; 02:00 and 02:30 do not exist.
    spring = date(2031, 3, 9)
    night = {6: [(time(1), time(4))]}
    found = slots(night, day=spring, zone=NEW_YORK)
    assert local_starts(found, NEW_YORK) == ["01:00", "01:30", "03:00", "03:30"]
    # A 09:00 slot is 09:00 local before and after the change: 14:00 UTC on Saturday, 13:00 UTC on Sunday.
    nine = {5: [(time(9), time(10))], 6: [(time(9), time(10))]}
    both = slots(nine, day=spring - timedelta(days=1), last=spring, minutes=60, zone=NEW_YORK)
    assert [s.starts_at for s in both] == [utc(2031, 3, 8, 14, 0), utc(2031, 3, 9, 13, 0)]
    # Autumn, Sunday 2 November 2031: 02:00 goes back to 01:00; 09:00 is 14:00 UTC again.
    autumn = date(2031, 11, 2)
    both = slots(nine, day=autumn - timedelta(days=1), last=autumn, minutes=60, zone=NEW_YORK)
    assert [s.starts_at for s in both] == [utc(2031, 11, 1, 13, 0), utc(2031, 11, 2, 14, 0)]


def test_intervals_merge_and_subtract():
    week = {1: [(time(9), time(11)), (time(10), time(12))]}
    assert day_intervals(week, TUESDAY, [], closed=False) == [(time(9), time(12))]
    cut = [Exception_(TIME_OFF, time(9, 30), time(10))]
    assert day_intervals(week, TUESDAY, cut, closed=False) == [(time(9), time(9, 30)), (time(10), time(12))]


def test_nearest_are_the_closest_in_time_in_time_order():
    found = slots(last=TUESDAY + timedelta(days=7))
    wanted = utc(2031, 1, 7, 9, 10)
    assert local_starts(nearest(found, wanted, 3)) == ["09:30", "10:00", "10:30"]
