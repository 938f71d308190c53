"""The staff task list: due times from the targets, filters, claim (one owner of two at once), reassign,
waiting on the patient (the clock pauses), complete; in place with htmx and as plain posts; audited."""

from __future__ import annotations

from datetime import datetime

import pytest
import time_machine
from sqlalchemy import select

from healthcrm.audit.models import AuditEvent
from healthcrm.care import services
from healthcrm.care.models import DONE, OPEN, WAITING, ResponseTarget, Task
from healthcrm.extensions import db
from tests.concurrency import parallel
from tests.factories import make_tenant, make_user

HX = {"HX-Request": "true"}
# Tuesday 3 March 2026, 10:00 in New York (EST).
TUESDAY_10 = datetime(2026, 3, 3, 15, 0)


def actions(task_id: int) -> list[str]:
    return list(
        db.session.scalars(
            select(AuditEvent.action)
            .where(AuditEvent.resource_type == "care_task", AuditEvent.resource_id == str(task_id))
            .order_by(AuditEvent.id)
        )
    )


def test_open_task_is_due_after_the_kinds_target_in_clinic_hours(clinic):
    with time_machine.travel(datetime(2026, 3, 6, 21, 0), tick=False):
        message = clinic.task("message")
        refill = clinic.task("refill")
        other = clinic.task("document")
    # 8 clinic hours: 1 on Friday, 7 on Monday (after the clocks changed) → 15:00 EDT = 19:00 UTC.
    assert message.due_at == datetime(2026, 3, 9, 19, 0)
    # 16: Friday 1 + Monday 9 + Tuesday 6 → Tuesday 14:00 EDT.
    assert refill.due_at == datetime(2026, 3, 10, 18, 0)
    # 24 (the default): Friday 1 + Monday 9 + Tuesday 9 + Wednesday 5 → Wednesday 13:00 EDT.
    assert other.due_at == datetime(2026, 3, 11, 17, 0)


def test_a_clinics_own_target_and_an_explicit_due_time(clinic):
    db.session.add(ResponseTarget(tenant_id=clinic.tenant.id, kind="message", hours=2))
    db.session.commit()
    with time_machine.travel(TUESDAY_10, tick=False):
        assert clinic.task("message").due_at == datetime(2026, 3, 3, 17, 0)
        given = datetime(2026, 4, 1, 12, 0)
        assert clinic.task("message", due_at=given).due_at == given


def test_filters_mine_pools_overdue_done(clinic):
    with time_machine.travel(TUESDAY_10, tick=False):
        mine = clinic.task(assignee_id=clinic.nurse.id, pool_roles=None)
        pool = clinic.task()
        doctors = clinic.task(pool_roles=["doctor"])
        late = clinic.task(due_at=datetime(2026, 3, 2, 15, 0))
        done = clinic.task()
        services.complete_task(clinic.actor(clinic.nurse), done.id, "Answered")
        nurse = clinic.actor(clinic.nurse)

        def ids(name):
            return {task.id for task in services.list_tasks(nurse, name).items}

        assert ids("mine") == {mine.id}
        assert ids("pools") == {pool.id, late.id}
        assert doctors.id not in ids("pools")
        assert ids("overdue") == {late.id}
        assert ids("done") == {done.id}
        assert ids("all") == {mine.id, pool.id, doctors.id, late.id}


def test_claim_and_the_second_claimant_is_told_who_has_it(clinic):
    task = clinic.task()
    claimed = services.claim_task(clinic.actor(clinic.nurse), task.id)
    assert claimed.assignee_id == clinic.nurse.id
    with pytest.raises(services.TaskTaken, match=clinic.nurse.full_name):
        services.claim_task(clinic.actor(clinic.coach), task.id)
    assert actions(task.id) == ["task.claimed"]


def test_a_pool_task_is_not_claimable_outside_the_pool(clinic):
    task = clinic.task(pool_roles=["doctor"])
    with pytest.raises(services.TaskError):
        services.claim_task(clinic.actor(clinic.nurse), task.id)


def test_concurrent_claims_give_one_owner(app, clinic):
    task_id = clinic.task().id
    people = [clinic.nurse, clinic.nurse2, clinic.coach, clinic.admin]
    actors = [clinic.actor(person) for person in people]
    outcomes = parallel(len(actors), app, lambda i: services.claim_task(actors[i], task_id).assignee_id)
    winners = [outcome for outcome in outcomes if isinstance(outcome, int)]
    losers = [outcome for outcome in outcomes if isinstance(outcome, services.TaskTaken)]
    assert len(winners) == 1 and len(losers) == 3, outcomes
    db.session.expire_all()
    owner = db.session.get(Task, task_id).assignee_id
    assert winners == [owner]
    holder = next(person for person in people if person.id == owner)
    assert all(holder.full_name in loser.message for loser in losers)
    assert actions(task_id) == ["task.claimed"]


def test_waiting_on_the_patient_pauses_the_clock_and_resuming_restarts_it(clinic):
    with time_machine.travel(TUESDAY_10, tick=False):
        task = clinic.task("message")  # due Tuesday 18:00 EST + … = Wednesday 09:00 EST
        assert task.due_at == datetime(2026, 3, 4, 14, 0)
    nurse = clinic.actor(clinic.nurse)
    with time_machine.travel(datetime(2026, 3, 3, 19, 0), tick=False):  # Tuesday 14:00: 4 h used
        paused = services.wait_on_patient(nurse, task.id)
    assert paused.status == WAITING and paused.remaining_minutes == 4 * 60
    # Paused tasks are never overdue, however long the patient takes.
    with time_machine.travel(datetime(2026, 3, 10, 15, 0), tick=False):  # a week later, Tuesday 11:00 EDT
        assert task.id not in {t.id for t in services.list_tasks(nurse, "overdue").items}
        resumed = services.resume_task(nurse, task.id)
    assert resumed.status == OPEN
    assert resumed.due_at == datetime(2026, 3, 10, 19, 0)
    assert actions(task.id) == ["task.waiting", "task.resumed"]


def test_an_overdue_task_paused_stays_overdue_when_resumed(clinic):
    with time_machine.travel(TUESDAY_10, tick=False):
        task = clinic.task(due_at=datetime(2026, 3, 3, 14, 0))
        services.wait_on_patient(clinic.actor(clinic.nurse), task.id)
        resumed = services.resume_task(clinic.actor(clinic.nurse), task.id)
    assert resumed.due_at == datetime(2026, 3, 3, 14, 0)


def test_reassign_to_staff_only_and_complete_with_a_note(clinic):
    task = clinic.task()
    nurse = clinic.actor(clinic.nurse)
    with pytest.raises(services.TaskError):
        services.reassign_task(nurse, task.id, clinic.portal_user.id)
    other_clinic_person = make_user(make_tenant(name="Other"), "nurse")
    with pytest.raises(services.TaskError):
        services.reassign_task(nurse, task.id, other_clinic_person.id)
    assert services.reassign_task(nurse, task.id, clinic.doctor.id).assignee_id == clinic.doctor.id
    done = services.complete_task(nurse, task.id, "Called the patient back")
    assert (done.status, done.completion_note, done.completed_by_id) == (
        DONE,
        "Called the patient back",
        clinic.nurse.id,
    )
    with pytest.raises(services.TaskError):
        services.complete_task(nurse, task.id, "again")
    assert actions(task.id) == ["task.reassigned", "task.completed"]


def test_the_list_page_shows_overdue_tasks_with_by_how_long(clinic, signed_in):
    with time_machine.travel(TUESDAY_10, tick=True):
        clinic.task(due_at=datetime(2026, 3, 3, 12, 0))
        client = signed_in(clinic.nurse)
        page = client.get("/care/tasks?filter=overdue")
    assert page.status_code == 200
    html = page.get_data(as_text=True)
    assert "Overdue by 3 h" in html and 'class="card task overdue"' in html
    assert "Answer the patient&#39;s message" in html or "Answer the patient's message" in html


def test_claim_in_place_with_htmx_and_as_a_plain_post(clinic, signed_in):
    first, second = clinic.task(), clinic.task()
    client = signed_in(clinic.nurse)
    answer = client.post(f"/care/tasks/{first.id}/claim", data={}, headers=HX)
    assert answer.status_code == 200
    html = answer.get_data(as_text=True)
    assert (
        html.lstrip().startswith("<li")
        and f'id="task-{first.id}"' in html
        and "You claimed this task." in html
    )
    plain = client.post(f"/care/tasks/{second.id}/claim", data={"next": "/care/tasks?filter=pools"})
    assert plain.status_code == 303 and plain.headers["Location"].endswith("/care/tasks?filter=pools")
    db.session.expire_all()
    assert db.session.get(Task, second.id).assignee_id == clinic.nurse.id


def test_a_claim_already_taken_shows_who_has_it_in_the_row(clinic, signed_in):
    task = clinic.task()
    services.claim_task(clinic.actor(clinic.coach), task.id)
    client = signed_in(clinic.nurse)
    answer = client.post(f"/care/tasks/{task.id}/claim", data={}, headers=HX)
    assert answer.status_code == 200
    assert f"{clinic.coach.full_name} has already claimed this task." in answer.get_data(as_text=True)


def test_bad_input_answers_422_and_changes_nothing(clinic, signed_in):
    task = clinic.task()
    client = signed_in(clinic.nurse)
    answer = client.post(f"/care/tasks/{task.id}/reassign", data={"assignee_id": "x"}, headers=HX)
    assert answer.status_code == 422
    assert "Choose a person" in answer.get_data(as_text=True)
    db.session.expire_all()
    assert db.session.get(Task, task.id).assignee_id is None


def test_wait_resume_complete_through_the_page(clinic, signed_in):
    task = clinic.task()
    client = signed_in(clinic.coach)
    assert client.post(f"/care/tasks/{task.id}/wait", data={}).status_code == 303
    assert client.post(f"/care/tasks/{task.id}/resume", data={}, headers=HX).status_code == 200
    answer = client.post(f"/care/tasks/{task.id}/complete", data={"note": "Done by phone"}, headers=HX)
    assert "Task completed." in answer.get_data(as_text=True)
    db.session.expire_all()
    assert db.session.get(Task, task.id).status == DONE


def test_another_clinics_task_is_not_found(clinic, signed_in):
    task = clinic.task()
    other = make_user(make_tenant(name="Elsewhere"), "nurse")
    client = signed_in(other)
    assert client.post(f"/care/tasks/{task.id}/claim", data={}).status_code == 404
    assert client.post(f"/care/tasks/{task.id}/complete", data={"note": "x"}).status_code == 404
    db.session.expire_all()
    assert db.session.get(Task, task.id).status == OPEN


def test_patients_may_not_open_the_task_list(clinic, signed_in):
    client = signed_in(clinic.portal_user)
    assert client.get("/care/tasks").status_code == 403
