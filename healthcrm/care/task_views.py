"""The staff task list: filters (mine, my pools, overdue, done, all), and claim, reassign, wait on the
patient, resume and complete, each in place (htmx swaps the task's row) or as a plain form post that comes
back to the list with a message."""

from __future__ import annotations

from flask import Blueprint, flash, redirect, request, url_for

from ..access import current_actor, requires
from ..clock import utcnow
from ..errors import DomainError
from ..extensions import htmx
from ..patients.models import CARE_STAGES
from ..web import render_page, safe_next
from . import services
from . import stages as _stages  # also registers the care-stage handler of every event
from .models import DONE, OPEN, WAITING

bp = Blueprint("care_tasks", __name__, url_prefix="/care/tasks")
TEMPLATE = "care/tasks.html"


def _list_url() -> str:
    return safe_next(request.form.get("next"), url_for("care_tasks.index"))


def _context(**extra) -> dict:
    actor = current_actor()
    return {
        "filters": services.FILTERS,
        "lateness": services.lateness,
        "may_claim": lambda task: services.may_claim(actor, task),
        "staff": services.staff_choices(actor.tenant_id),
        "now": utcnow(),
        "OPEN": OPEN,
        "WAITING": WAITING,
        "DONE": DONE,
        "row_error": None,
        "row_notice": None,
        "next_url": request.full_path.rstrip("?") if request.method == "GET" else _list_url(),
        **extra,
    }


@bp.get("")
@requires("care.tasks")
def index():
    actor = current_actor()
    try:
        page_number = max(1, int(request.args.get("page", 1)))
    except ValueError:
        page_number = 1
    page = services.list_tasks(actor, request.args.get("filter", services.DEFAULT_FILTER), page_number)
    return render_page(
        TEMPLATE,
        block="results",
        page=page,
        counts=services.filter_counts(actor),
        **_context(),
    )


def _answer(task_id: int, action, *, done: str):
    """Run `action`; answer htmx with the task's row (with the outcome in it), a plain post with a redirect
    to the list and a flashed message."""
    actor = current_actor()
    error = None
    status = 200
    try:
        task = action(actor)
    except services.TaskTaken as failure:
        # Not bad input: the row now shows who has the task (htmx swaps only 2xx and 422 answers).
        error = failure.message
        task = services.get_task(actor, task_id)
    except DomainError as failure:
        error, status = failure.message, 422
        task = services.get_task(actor, task_id)
    if htmx:
        return render_page(
            TEMPLATE,
            block="task_row",
            task=task,
            status=status,
            **_context(row_error=error, row_notice=None if error else done),
        )
    flash(error or done, "error" if error else "success")
    return redirect(_list_url(), code=303)


@bp.post("/<int:task_id>/claim")
@requires("care.tasks")
def claim(task_id: int):
    return _answer(task_id, lambda actor: services.claim_task(actor, task_id), done="You claimed this task.")


@bp.post("/<int:task_id>/reassign")
@requires("care.tasks")
def reassign(task_id: int):
    try:
        user_id = int(request.form.get("assignee_id", ""))
    except ValueError:
        user_id = None
    return _answer(
        task_id, lambda actor: services.reassign_task(actor, task_id, user_id), done="Task reassigned."
    )


@bp.post("/<int:task_id>/wait")
@requires("care.tasks")
def wait(task_id: int):
    return _answer(
        task_id,
        lambda actor: services.wait_on_patient(actor, task_id),
        done="Waiting on the patient: the due time is paused.",
    )


@bp.post("/<int:task_id>/resume")
@requires("care.tasks")
def resume(task_id: int):
    return _answer(
        task_id, lambda actor: services.resume_task(actor, task_id), done="Resumed: the due time runs again."
    )


@bp.post("/<int:task_id>/complete")
@requires("care.tasks")
def complete(task_id: int):
    note = request.form.get("note", "")
    return _answer(
        task_id, lambda actor: services.complete_task(actor, task_id, note), done="Task completed."
    )


@bp.app_template_global()
def care_stage_history(patient_id: int) -> list:
    """The patient's care stage moves made by rules (the patient page's small history)."""
    return _stages.stage_history(current_actor().tenant_id, patient_id)


@bp.app_template_global()
def describe_stage_rule(rule) -> str:
    return _stages.describe_rule(rule) if rule is not None else "a rule since removed"


@bp.app_template_global()
def care_stage_label(stage: str) -> str:
    return CARE_STAGES.get(stage, stage)
