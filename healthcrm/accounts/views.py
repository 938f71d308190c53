"""Sign-in, sign-out, password reset, invitations, MFA, sessions and (for admins) user management."""

from __future__ import annotations

from datetime import datetime

from flask import Blueprint, abort, current_app, flash, g, redirect, request, session, url_for
from flask_login import current_user

from ..access import admin_only, any_signed_in, any_signed_in_mfa_pending, current_actor, public
from ..clock import utcnow
from ..extensions import limiter
from ..web import clear_auth_cookie, home_for, render_page, safe_next, set_auth_cookie
from . import devices, mfa
from . import services as accounts
from .forms import (
    ChangePasswordForm,
    ClinicSecurityForm,
    ConfirmMfaForm,
    DisableMfaForm,
    ForgotPasswordForm,
    InviteStaffForm,
    LoginForm,
    MfaForm,
    NewPasswordForm,
    RoleForm,
)
from .sessions import live_sessions

bp = Blueprint("accounts", __name__)

PENDING_MFA_KEY = "pending_mfa_user_id"
PENDING_NEXT_KEY = "pending_next"
PENDING_AT_KEY = "pending_mfa_at"
INVALID = 422


def _login_account_key() -> str:
    """The per-account sign-in bucket: shared by every browser, except one holding this account's
    device cookie (it signed in here before), which has a bucket of its own."""
    email = accounts.normalise_email(request.form.get("email", ""))
    device = devices.device_id(request.cookies.get(current_app.config["DEVICE_COOKIE_NAME"]), email)
    if device:
        return f"login-device:{email}:{device}"
    return "login-account:" + email


def _mfa_account_key() -> str:
    return f"mfa-account:{session.get(PENDING_MFA_KEY)}"


def _failed(response) -> bool:
    # Only failed attempts count against the limits; a successful sign-in redirects. A 503 is the limit
    # store itself being down: nothing to count, nowhere to count it.
    return response.status_code not in (303, 503)


def _password_step_at() -> datetime | None:
    try:
        return datetime.fromisoformat(session.get(PENDING_AT_KEY, ""))
    except (TypeError, ValueError):
        return None


def _finish_sign_in(user, next_url: str | None):
    for key in (PENDING_MFA_KEY, PENDING_NEXT_KEY, PENDING_AT_KEY):
        session.pop(key, None)
    session.pop("csrf_token", None)  # a fresh CSRF token for the new session
    raw = accounts.sign_in(user, current_actor(), method="mfa" if user.mfa_enabled else "password")
    response = set_auth_cookie(redirect(safe_next(next_url, home_for(user)), code=303), raw)
    return _set_device_cookie(response, user.email)


def _set_device_cookie(response, email: str):
    config = current_app.config
    known = devices.device_id(request.cookies.get(config["DEVICE_COOKIE_NAME"]), email)
    if known is None:
        response.set_cookie(
            config["DEVICE_COOKIE_NAME"],
            devices.new_device_cookie(email),
            max_age=int(config["DEVICE_COOKIE_DAYS"]) * 24 * 3600,
            httponly=True,
            secure=config["SESSION_COOKIE_SECURE"],
            samesite="Strict",
        )
    return response


@bp.route("/login", methods=["GET", "POST"])
@public
@limiter.limit(
    lambda: current_app.config.get("LOGIN_LIMIT_PER_CLIENT", "30 per 15 minutes"),
    methods=["POST"],
    deduct_when=_failed,
    scope="login-client",
)
@limiter.limit(
    lambda: current_app.config.get("LOGIN_LIMIT_PER_ACCOUNT", "5 per 15 minutes"),
    key_func=_login_account_key,
    methods=["POST"],
    deduct_when=_failed,
    scope="login-account",
)
def login():
    if current_user.is_authenticated:
        return redirect(home_for(current_user))
    form = LoginForm()
    if form.validate_on_submit():
        try:
            user = accounts.check_password_login(form.email.data, form.password.data, current_actor())
        except accounts.AccountError as error:
            form.form_errors.append(error.message)
        else:
            next_url = request.args.get("next")
            if user.mfa_enabled:
                session[PENDING_MFA_KEY] = user.id
                session[PENDING_NEXT_KEY] = safe_next(next_url, "")
                session[PENDING_AT_KEY] = utcnow().isoformat()
                return redirect(url_for("accounts.login_mfa"), code=303)
            return _finish_sign_in(user, next_url)
    status = INVALID if request.method == "POST" else 200
    return render_page("accounts/login.html", form=form, status=status)


@bp.route("/login/mfa", methods=["GET", "POST"])
@public
@limiter.limit(
    "5 per 5 minutes", key_func=_mfa_account_key, methods=["POST"], deduct_when=_failed, scope="login-mfa"
)
def login_mfa():
    user = accounts.pending_mfa_user(session.get(PENDING_MFA_KEY), _password_step_at())
    if user is None:
        return redirect(url_for("accounts.login"))
    form = MfaForm()
    if form.validate_on_submit():
        if mfa.check_second_factor(user, form.code.data, accounts.actor_for_user(user, current_actor())):
            return _finish_sign_in(user, session.get(PENDING_NEXT_KEY))
        form.code.errors.append("That code is not right. Try the newest code from your app.")
    status = INVALID if request.method == "POST" else 200
    return render_page("accounts/login_mfa.html", form=form, status=status)


@bp.post("/logout")
@any_signed_in_mfa_pending
def logout():
    accounts.sign_out(g.user_session, current_actor())
    flash("You are signed out.", "info")
    return clear_auth_cookie(redirect(url_for("accounts.login"), code=303))


@bp.route("/forgot", methods=["GET", "POST"])
@public
@limiter.limit("5 per 15 minutes", methods=["POST"], scope="forgot-client")
def forgot_password():
    form = ForgotPasswordForm()
    if form.validate_on_submit():
        accounts.request_password_reset(form.email.data, current_actor())
        flash("If that email has an account, a reset link is on its way. It works for 30 minutes.", "info")
        return redirect(url_for("accounts.login"), code=303)
    return render_page("accounts/forgot.html", form=form, status=INVALID if request.method == "POST" else 200)


def _password_token_page(token: str, purpose: str, template: str):
    found = accounts.find_usable_token(token, purpose)
    form = NewPasswordForm()
    if found is None:
        return render_page(template, form=None, user=None, status=404)
    if form.validate_on_submit():
        try:
            user = accounts.complete_password_token(token, purpose, form.password.data, current_actor())
        except accounts.AccountError as error:
            form.password.errors.append(error.message)
        else:
            if purpose == accounts.INVITE and not user.mfa_enabled and not mfa.is_required(user):
                flash("Welcome! Your password is set.", "success")
                return _finish_sign_in(user, None)
            flash("Your password is set. Sign in with it now.", "success")
            return redirect(url_for("accounts.login"), code=303)
    status = INVALID if request.method == "POST" else 200
    return render_page(template, form=form, user=found.user, status=status)


@bp.route("/reset/<token>", methods=["GET", "POST"])
@public
@limiter.limit("10 per 15 minutes", methods=["POST"], scope="reset-client")
def reset_password(token: str):
    return _password_token_page(token, accounts.RESET, "accounts/reset.html")


@bp.route("/invitation/<token>", methods=["GET", "POST"])
@public
@limiter.limit("10 per 15 minutes", methods=["POST"], scope="invitation-client")
def accept_invitation(token: str):
    return _password_token_page(token, accounts.INVITE, "accounts/invitation.html")


# --- your own account -----------------------------------------------------------------------------


def _security_page(password_form=None, disable_form=None, status=200):
    return render_page(
        "accounts/security.html",
        sessions=live_sessions(current_user),
        current_session_id=g.user_session.id,
        password_form=password_form or ChangePasswordForm(),
        disable_form=disable_form or DisableMfaForm(),
        recovery_left=mfa.unused_recovery_codes(current_user) if current_user.mfa_enabled else 0,
        mfa_required=mfa.is_required(current_user),
        status=status,
    )


@bp.get("/account/security")
@any_signed_in
def security():
    return _security_page()


@bp.post("/account/password")
@any_signed_in
def change_password():
    form = ChangePasswordForm()
    if form.validate_on_submit():
        try:
            accounts.change_password(
                current_user,
                form.current_password.data,
                form.password.data,
                current_actor(),
                keep_session_id=g.user_session.id,
            )
        except accounts.AccountError as error:
            getattr(form, error.field or "password").errors.append(error.message)
        else:
            flash("Password changed. Your other sessions were signed out.", "success")
            return redirect(url_for("accounts.security"), code=303)
    return _security_page(password_form=form, status=INVALID)


@bp.post("/account/sessions/<int:session_id>/revoke")
@any_signed_in
def revoke_session(session_id: int):
    try:
        accounts.revoke_one_session(current_user, session_id, current_actor())
    except LookupError:
        abort(404)
    if session_id == g.user_session.id:
        return clear_auth_cookie(redirect(url_for("accounts.login"), code=303))
    flash("That session is signed out.", "success")
    return redirect(url_for("accounts.security"), code=303)


@bp.post("/account/sessions/revoke-all")
@any_signed_in_mfa_pending
def sign_out_everywhere():
    accounts.sign_out_everywhere(current_user, current_actor())
    flash("You are signed out on every device.", "info")
    return clear_auth_cookie(redirect(url_for("accounts.login"), code=303))


@bp.route("/account/mfa/setup", methods=["GET", "POST"])
@any_signed_in_mfa_pending
def mfa_setup():
    if current_user.mfa_enabled:
        return redirect(url_for("accounts.security"))
    form = ConfirmMfaForm()
    secret = mfa.pending_secret(current_user)
    if request.method == "GET" or secret is None:
        secret = mfa.start_enrolment(current_user)
    elif form.validate_on_submit():
        try:
            codes = mfa.confirm_enrolment(current_user, form.code.data, current_actor())
        except accounts.AccountError as error:
            form.code.errors.append(error.message)
        else:
            return render_page("accounts/recovery_codes.html", codes=codes, enrolled=True)
    uri = mfa.provisioning_uri(current_user, secret)
    return render_page(
        "accounts/mfa_setup.html",
        form=form,
        secret=secret,
        qr=mfa.qr_svg_data_uri(uri),
        required=g.get("mfa_enrolment_required", False),
        status=INVALID if request.method == "POST" else 200,
    )


@bp.post("/account/mfa/recovery-codes")
@any_signed_in
def regenerate_recovery_codes():
    if not current_user.mfa_enabled:
        abort(404)
    codes = mfa.regenerate_recovery_codes(current_user, current_actor())
    return render_page("accounts/recovery_codes.html", codes=codes, enrolled=False)


@bp.post("/account/mfa/disable")
@any_signed_in
def disable_mfa():
    form = DisableMfaForm()
    if form.validate_on_submit():
        try:
            mfa.disable(current_user, form.password.data, current_actor())
        except accounts.AccountError as error:
            form.password.errors.append(error.message)
        else:
            flash("Two-step sign-in is off.", "info")
            return redirect(url_for("accounts.security"), code=303)
    return _security_page(disable_form=form, status=INVALID)


# --- user management (admins) ----------------------------------------------------------------------


def _users_page(invite_form=None, status=200):
    return render_page(
        "accounts/users.html",
        users=accounts.clinic_users(current_user.tenant_id),
        invite_form=invite_form or InviteStaffForm(),
        role_form_for=lambda user: RoleForm(role=user.role, prefix=f"u{user.id}"),
        clinic_form=ClinicSecurityForm(mfa_required_for_staff=current_user.tenant.mfa_required_for_staff),
        status=status,
    )


@bp.get("/users")
@admin_only
def users():
    return _users_page()


@bp.post("/users/invite")
@admin_only
def invite_user():
    form = InviteStaffForm()
    if form.validate_on_submit():
        try:
            user = accounts.invite_staff(
                current_actor(), form.email.data, form.full_name.data, form.role.data
            )
        except accounts.AccountError as error:
            getattr(form, error.field or "email").errors.append(error.message)
        else:
            flash(f"Invitation sent to {user.email}.", "success")
            return redirect(url_for("accounts.users"), code=303)
    return _users_page(invite_form=form, status=INVALID)


def _user_action(action, *args, done: str):
    try:
        action(current_actor(), *args)
    except LookupError:
        abort(404)
    except accounts.AccountError as error:
        flash(error.message, "error")
    else:
        flash(done, "success")
    return redirect(url_for("accounts.users"), code=303)


@bp.post("/users/<int:user_id>/role")
@admin_only
def change_user_role(user_id: int):
    form = RoleForm(prefix=f"u{user_id}")
    if not form.validate_on_submit():
        abort(400)
    return _user_action(
        accounts.change_role,
        user_id,
        form.role.data,
        done="Role saved. A changed role signs the person out everywhere.",
    )


@bp.post("/users/<int:user_id>/deactivate")
@admin_only
def deactivate_user(user_id: int):
    return _user_action(
        accounts.set_active, user_id, False, done="Account deactivated and signed out everywhere."
    )


@bp.post("/users/<int:user_id>/activate")
@admin_only
def activate_user(user_id: int):
    return _user_action(accounts.set_active, user_id, True, done="Account reactivated.")


@bp.post("/users/<int:user_id>/resend-invitation")
@admin_only
def resend_invitation(user_id: int):
    return _user_action(accounts.resend_invitation, user_id, done="Invitation sent again.")


@bp.post("/clinic/security")
@admin_only
def clinic_security():
    form = ClinicSecurityForm()
    if not form.validate_on_submit():
        abort(400)
    accounts.set_mfa_required(current_actor(), form.mfa_required_for_staff.data)
    flash("Clinic security setting saved.", "success")
    return redirect(url_for("accounts.users"), code=303)
