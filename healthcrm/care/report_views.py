"""The portal report for admins (care_report)."""

from __future__ import annotations

from flask import Blueprint

from ..access import current_actor, requires
from ..web import render_page
from .hours import describe_minutes
from .report import portal_report

bp = Blueprint("care_report", __name__, url_prefix="/care/report")


@bp.get("")
@requires("care.report")
def index():
    return render_page("care/report.html", report=portal_report(current_actor()), span=describe_minutes)
