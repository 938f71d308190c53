"""Care plans: versions written by staff, read and acknowledged by the patient (notified, then a task for
the coach), who acknowledged which version and when, two editors at once."""

from __future__ import annotations

from sqlalchemy import func, select

from healthcrm.care.models import Task
from healthcrm.errors import Conflict
from healthcrm.extensions import db
from healthcrm.portal.models import Notification
from healthcrm.selfcare import care_plans
from healthcrm.selfcare.handlers import self_care_attention
from healthcrm.selfcare.models import CarePlanAcknowledgement, CarePlanVersion
from healthcrm.tenant_scope import all_tenants
from tests.concurrency import parallel
from tests.portal.selfcare_data import make_clinic, sign_in


def _count(model) -> int:
    with all_tenants("test"):
        return db.session.scalar(select(func.count()).select_from(model))


def test_versions_acknowledgement_notice_and_coach_task(app, client, drain_jobs):
    clinic = make_clinic()
    staff = app.test_client()
    sign_in(staff, clinic.coach)
    url = f"/care/patients/{clinic.patient.id}/care-plan"
    assert staff.post(url, data={"goals": "", "instructions": "x", "based_on": "0"}).status_code == 422
    assert (
        staff.post(
            url, data={"goals": "Walk daily", "instructions": "30 minutes", "based_on": "0"}
        ).status_code
        == 303
    )
    assert (
        staff.post(
            url, data={"goals": "Walk daily", "instructions": "45 minutes", "based_on": "1"}
        ).status_code
        == 303
    )
    # An editor who started from version 1 is told, and nothing is saved.
    assert staff.post(url, data={"goals": "Run", "instructions": "x", "based_on": "1"}).status_code == 409
    assert _count(CarePlanVersion) == 2
    drain_jobs()
    notice = db.session.scalar(select(Notification).where(Notification.user_id == clinic.user.id))
    assert notice.kind == "care_plan" and "Walk" not in notice.text
    assert [a.text for a in self_care_attention(clinic.tenant.id, clinic.patient.id, clinic.user.id)] == [
        "A care plan to read"
    ]

    sign_in(client, clinic.user)
    page = client.get("/portal/care-plan")
    assert "45 minutes" in page.text and "30 minutes" not in page.text
    version = care_plans.current_version(clinic.tenant.id, clinic.patient.id)
    first = db.session.scalar(
        select(CarePlanVersion).where(
            CarePlanVersion.number == 1, CarePlanVersion.tenant_id == clinic.tenant.id
        )
    )
    assert client.post("/portal/care-plan/acknowledge", data={"version_id": first.id}).status_code == 422
    assert client.post("/portal/care-plan/acknowledge", data={"version_id": version.id}).status_code == 303
    assert client.post("/portal/care-plan/acknowledge", data={"version_id": version.id}).status_code == 303
    assert _count(CarePlanAcknowledgement) == 1
    drain_jobs()
    task = db.session.scalar(select(Task).where(Task.kind == "care_plan", Task.tenant_id == clinic.tenant.id))
    assert task.assignee_id == clinic.coach.id
    assert self_care_attention(clinic.tenant.id, clinic.patient.id, clinic.user.id) == []
    shown = staff.get(f"/care/patients/{clinic.patient.id}/self-care")
    assert "Version 2" in shown.text and "Version 1" in shown.text and "Acknowledged" in shown.text


def test_another_patients_version_is_404(app, client):
    clinic = make_clinic()
    other = make_clinic("Other")
    theirs = care_plans.publish_version(
        other.actor(other.coach), other.patient.id, goals="g", instructions="i", based_on=0
    )
    sign_in(client, clinic.user)
    assert client.post("/portal/care-plan/acknowledge", data={"version_id": theirs.id}).status_code == 404
    assert _count(CarePlanAcknowledgement) == 0


def test_two_editors_saving_at_once_make_one_version(app):
    clinic = make_clinic()
    actors = [clinic.actor(clinic.coach), clinic.actor(clinic.nurse)]
    outcomes = parallel(
        2,
        app,
        lambda i: (
            care_plans.publish_version(
                actors[i], clinic.patient.id, goals=f"g{i}", instructions="i", based_on=0
            ).number
        ),
    )
    assert sum(isinstance(o, Conflict) for o in outcomes) == 1, outcomes
    assert _count(CarePlanVersion) == 1


def test_timeline_sources_give_refills_and_care_plan_versions_newest_first(app):
    from healthcrm.portal.feed import TIMELINE_SOURCES
    from healthcrm.selfcare import refills

    clinic = make_clinic()
    refills.request_refill(clinic.actor(), clinic.patient.id, clinic.daily.id, None)
    care_plans.publish_version(
        clinic.actor(clinic.coach), clinic.patient.id, goals="g", instructions="i", based_on=0
    )
    care_plans.publish_version(
        clinic.actor(clinic.coach), clinic.patient.id, goals="g2", instructions="i", based_on=1
    )
    _label, refill_source = TIMELINE_SOURCES["refill"]
    items = refill_source(clinic.tenant.id, clinic.patient.id, None, 10)
    assert [i.title for i in items] == ["Refill requested: Lisinopril"]
    _label, plan_source = TIMELINE_SOURCES["care_plan"]
    first_page = plan_source(clinic.tenant.id, clinic.patient.id, None, 1)
    assert first_page[0].title == "Your care plan changed (version 2)"
    rest = plan_source(clinic.tenant.id, clinic.patient.id, (first_page[0].at, first_page[0].key), 10)
    assert [i.title for i in rest] == ["Your care plan"]
    other = make_clinic("Other")
    assert plan_source(other.tenant.id, clinic.patient.id, None, 10) == []
