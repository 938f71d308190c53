"""Dose marks: the schedule from the frequency (or set by staff), one mark per dose (two at once make one
row), the weekly view, htmx and plain posts, the percentage for staff, another patient's ids 404."""

from __future__ import annotations

from datetime import UTC, datetime

import time_machine
from sqlalchemy import func, select

from healthcrm.extensions import db
from healthcrm.selfcare import adherence
from healthcrm.selfcare.models import DoseMark
from healthcrm.selfcare.schedule import derived_schedule, parse_slots
from healthcrm.tenant_scope import all_tenants
from tests.concurrency import parallel
from tests.portal.selfcare_data import make_clinic, sign_in

EVENING_UTC = datetime(2026, 12, 3, 3, 0, tzinfo=UTC)  # 21:00 on 2 December in Chicago
DAY = "2026-12-02"


def _marks() -> int:
    with all_tenants("test"):
        return db.session.scalar(select(func.count()).select_from(DoseMark))


def test_schedules_from_common_frequencies_and_staff_times():
    assert derived_schedule("Once daily") == ("08:00",)
    assert derived_schedule("twice  daily") == ("08:00", "20:00")
    assert derived_schedule("as needed") == ()
    assert parse_slots("8:00, 20:00 8:00") == ["08:00", "20:00"]


@time_machine.travel(EVENING_UTC, tick=False)
def test_marking_todays_dose_with_htmx_and_the_percentage(app, client):
    clinic = make_clinic()
    sign_in(client, clinic.user)
    week = client.get("/portal/doses")
    assert week.status_code == 200 and "Lisinopril" in week.text and "Metformin" in week.text
    data = {"prescription_id": clinic.daily.id, "day": DAY, "slot": "08:00", "status": "taken"}
    cell = client.post("/portal/doses/mark", data=data, headers={"HX-Request": "true"})
    assert cell.status_code == 200 and cell.text.strip().startswith("<td") and "Taken" in cell.text
    plain = client.post(
        "/portal/doses/mark", data={**data, "prescription_id": clinic.twice.id, "status": "missed"}
    )
    assert plain.status_code == 303
    # Once marked, a dose stays as it was.
    client.post("/portal/doses/mark", data={**data, "status": "missed"})
    assert _marks() == 2
    rate = adherence.compute_adherence(clinic.tenant.id, clinic.patient.id)
    # Started 29 Nov (three days ago): daily 4 doses + twice-daily 8 doses due by 21:00 today.
    assert (rate.due, rate.taken, rate.missed) == (12, 1, 1)
    assert rate.percent == 8


@time_machine.travel(EVENING_UTC, tick=False)
def test_future_unscheduled_and_other_patients_doses_are_refused(app, client):
    clinic = make_clinic()
    other = make_clinic("Other")
    sign_in(client, clinic.user)
    base = {"prescription_id": clinic.daily.id, "day": DAY, "slot": "08:00", "status": "taken"}
    assert client.post("/portal/doses/mark", data={**base, "day": "2026-12-03"}).status_code == 422
    assert client.post("/portal/doses/mark", data={**base, "slot": "09:00"}).status_code == 422
    in_place = client.post(
        "/portal/doses/mark", data={**base, "day": "2026-12-03"}, headers={"HX-Request": "true"}
    )
    assert in_place.status_code == 422 and in_place.text.startswith("<td") and "not before" in in_place.text
    assert (
        client.post("/portal/doses/mark", data={**base, "prescription_id": other.daily.id}).status_code == 404
    )
    assert _marks() == 0


@time_machine.travel(EVENING_UTC, tick=False)
def test_marking_one_dose_twice_at_once_makes_one_row(app):
    clinic = make_clinic()
    actor = clinic.actor()
    statuses = ["taken", "missed", "taken", "missed"]
    outcomes = parallel(
        4,
        app,
        lambda i: (
            adherence.mark_dose(actor, clinic.patient.id, clinic.daily.id, DAY, "08:00", statuses[i]).already
        ),
    )
    assert sorted(outcomes) == [False, True, True, True], outcomes
    assert _marks() == 1


@time_machine.travel(EVENING_UTC, tick=False)
def test_staff_set_dose_times_and_see_adherence(app, client):
    clinic = make_clinic()
    sign_in(client, clinic.nurse)
    url = f"/care/patients/{clinic.patient.id}/prescriptions/{clinic.daily.id}/schedule"
    assert client.post(url, data={"times": "25:00"}).status_code == 422
    assert client.post(url, data={"times": "07:30, 19:30"}).status_code == 303
    db.session.expire_all()
    assert clinic.daily.schedule == ["07:30", "19:30"]
    page = client.get(f"/care/patients/{clinic.patient.id}/self-care")
    assert "Medication adherence" in page.text and "doses due in the last 14 days" in page.text
