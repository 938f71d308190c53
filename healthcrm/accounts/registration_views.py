"""/register: a patient creates their portal account with the code from their clinic."""

from __future__ import annotations

from flask import Blueprint, current_app, flash, redirect, request
from flask_login import current_user

from ..access import current_actor, public
from ..extensions import db, limiter
from ..web import home_for, render_page
from . import registration
from .forms import NewPasswordForm, RegisterForm
from .models import Tenant
from .services import AccountError

bp = Blueprint("registration", __name__)

INVALID = 422


def _failed(response) -> bool:
    # Only refused attempts count (a wrong code, date of birth or email); a match answers 200.
    return response.status_code == INVALID


def _code_key() -> str:
    return "register-code:" + registration.normalise_code(request.form.get("code", ""))[:20]


@bp.route("/register", methods=["GET", "POST"])
@public
@limiter.limit(
    lambda: current_app.config.get("REGISTER_LIMIT_PER_CLIENT", "10 per 15 minutes"),
    methods=["POST"],
    deduct_when=_failed,
    scope="register-client",
)
@limiter.limit(
    lambda: current_app.config.get("REGISTER_LIMIT_PER_CODE", "5 per 15 minutes"),
    key_func=_code_key,
    methods=["POST"],
    deduct_when=_failed,
    scope="register-code",
)
def register():
    if current_user.is_authenticated:
        return redirect(home_for(current_user))
    form = RegisterForm()
    if form.validate_on_submit():
        try:
            registration.start_registration(
                form.code.data, form.date_of_birth.data, form.email.data, current_actor()
            )
        except AccountError as error:
            target = form.email if error.field == "email" else None
            (target.errors if target is not None else form.form_errors).append(error.message)
        else:
            return render_page("accounts/register.html", form=None, sent_to=form.email.data, status=200)
    status = INVALID if request.method == "POST" else 200
    return render_page("accounts/register.html", form=form, sent_to=None, status=status)


@bp.route("/register/<token>", methods=["GET", "POST"])
@public
@limiter.limit("10 per 15 minutes", methods=["POST"], scope="register-finish-client")
def finish(token: str):
    from .views import _finish_sign_in  # noqa: PLC0415 - the one way a browser is signed in

    found = registration.find_registration(token)
    if found is None:
        return render_page("accounts/register_finish.html", form=None, user=None, status=404)
    form = NewPasswordForm()
    if form.validate_on_submit():
        try:
            user = registration.complete_registration(token, form.password.data, current_actor())
        except AccountError as error:
            form.password.errors.append(error.message)
        else:
            flash("Welcome! Your account is ready.", "success")
            return _finish_sign_in(user, None)
    status = INVALID if request.method == "POST" else 200
    shown = {
        "email": found.verify_email,
        "tenant": db.session.get(Tenant, found.tenant_id),
        "full_name": found.patient.full_name,
    }
    return render_page("accounts/register_finish.html", form=form, user=shown, status=status)
