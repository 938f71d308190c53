"""Admins acknowledge what the nightly audit verification found (the banner on the audit page)."""

from flask import Blueprint, abort, flash, redirect, url_for
from flask_login import current_user

from ..access import current_actor, requires
from .alerts import acknowledge, open_alerts

bp = Blueprint("audit_alerts", __name__, url_prefix="/audit/alerts")


@bp.app_template_global()
def integrity_alerts() -> list:
    """The signed-in admin's clinic's unacknowledged findings (for the audit page's banner)."""
    if not current_user.is_authenticated or not current_user.can("audit.read"):
        return []
    return open_alerts(current_user.tenant_id)


@bp.post("/<int:alert_id>/acknowledge")
@requires("audit.read")
def acknowledge_alert(alert_id: int):
    if not acknowledge(current_actor(), alert_id):
        abort(404)
    flash("Alert acknowledged. It stays in the audit log; the finding is not fixed by acknowledging it.")
    return redirect(url_for("audit.index"))
