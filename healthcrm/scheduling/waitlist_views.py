"""The patient's waitlist in the portal: ask for an earlier time, withdraw, and answer an offer. The patient
id always comes from the session; another patient's entry or offer id answers 404 and changes nothing."""

from __future__ import annotations

from datetime import date

from flask import Blueprint, flash, redirect, request, url_for
from flask_login import current_user

from ..access import current_actor, requires
from ..web import render_page
from . import waitlist

bp = Blueprint("portal_waitlist", __name__, url_prefix="/portal/waitlist")
INVALID = 422
patient_page = requires("portal.use")


def _int(name: str) -> int | None:
    value = request.form.get(name) or request.args.get(name)
    try:
        return int(value) if value else None
    except ValueError:
        return None


def _day(name: str) -> date | None:
    try:
        return date.fromisoformat(request.form.get(name, "").strip())
    except ValueError:
        return None


@bp.route("/", methods=["GET", "POST"])
@patient_page
def index():
    actor = current_actor()
    errors: dict[str, str] = {}
    status = 200
    form = {
        "type_id": _int("type_id"),
        "provider_id": _int("provider_id"),
        "earliest_day": request.form.get("earliest_day", ""),
        "latest_day": request.form.get("latest_day", ""),
        "appointment_id": _int("appointment_id"),
    }
    if request.method == "POST":
        try:
            waitlist.join_waitlist(
                actor,
                current_user.patient_id,
                form["type_id"],
                form["provider_id"],
                _day("earliest_day"),
                _day("latest_day"),
                form["appointment_id"],
            )
        except waitlist.WaitlistError as error:
            errors[error.field or ""] = error.message
            status = INVALID
        else:
            flash("You are on the waitlist. We will tell you as soon as a time comes free.", "success")
            return redirect(url_for("portal_waitlist.index"), 303)
    view = waitlist.patient_waitlist(actor, current_user.patient_id)
    form["earliest_day"] = form["earliest_day"] or view.today.isoformat()
    form["latest_day"] = form["latest_day"] or view.default_latest.isoformat()
    return render_page("scheduling/waitlist/index.html", view=view, form=form, errors=errors, status=status)


@bp.post("/<int:entry_id>/withdraw")
@patient_page
def withdraw(entry_id: int):
    waitlist.withdraw(current_actor(), current_user.patient_id, entry_id)
    flash("You are off the waitlist for that request.", "success")
    return redirect(url_for("portal_waitlist.index"), 303)


@bp.get("/offers/<int:offer_id>")
@patient_page
def offer(offer_id: int):
    view = waitlist.patient_offer(current_actor(), current_user.patient_id, offer_id)
    return render_page("scheduling/waitlist/offer.html", view=view, error=None)


@bp.post("/offers/<int:offer_id>/accept")
@patient_page
def accept(offer_id: int):
    actor = current_actor()
    try:
        waitlist.accept_offer(actor, current_user.patient_id, offer_id)
    except waitlist.WaitlistError as error:
        view = waitlist.patient_offer(actor, current_user.patient_id, offer_id)
        return render_page("scheduling/waitlist/offer.html", view=view, error=error.message, status=INVALID)
    except waitlist.OfferEnded as error:
        view = waitlist.patient_offer(actor, current_user.patient_id, offer_id)
        return render_page("scheduling/waitlist/offer.html", view=view, error=error.message, status=409)
    flash("Booked. The time is yours.", "success")
    return redirect(url_for("portal_waitlist.offer", offer_id=offer_id), 303)


@bp.post("/offers/<int:offer_id>/decline")
@patient_page
def decline(offer_id: int):
    waitlist.decline_offer(current_actor(), current_user.patient_id, offer_id)
    flash("We let that time go. You stay on the waitlist for other times.", "success")
    return redirect(url_for("portal_waitlist.index"), 303)
