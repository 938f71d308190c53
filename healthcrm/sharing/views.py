"""Where patients (in the portal) and staff (for them, from the patient page) share records and manage the
links: the list with its actions in place, the form that makes links, each link's access log; the admins'
sharing overview; the patient's notifications.

A made link's token is on the page that answers the form and nowhere else: only its hash is kept, so later
pages offer "Send again" (a fresh emailed link) instead of the link itself.
"""

from __future__ import annotations

from datetime import timedelta

from flask import Blueprint, Response, abort, flash, redirect, request, url_for
from flask_login import current_user

from ..access import current_actor, patient_only, requires
from ..accounts.mfa import qr_svg_data_uri
from ..clock import utcnow
from ..extensions import htmx
from ..patients.models import Patient
from ..tenancy import get_scoped
from ..useragent import describe_user_agent
from ..web import render_fragment, render_page
from . import preview as preview_service
from . import services
from .forms import ExtendForm, PasscodeForm, ShareForm
from .overview import sharing_overview
from .provider_views import sections_context
from .tasks import describe_scope

bp = Blueprint("sharing", __name__)

INVALID = 422
SHARES_CHANGED = "shares-changed"  # an htmx event: the list of shares reloads itself
staff_sharers = requires("share.manage_for_patient")
sharers = requires("share.manage_own", "share.manage_for_patient")


# --- the list --------------------------------------------------------------------------------------------


def _links(patient_id: int) -> dict[str, str]:
    if current_user.is_patient:
        return {"list": url_for("sharing.portal_index"), "new": url_for("sharing.portal_create")}
    return {
        "list": url_for("sharing.staff_index", patient_id=patient_id),
        "new": url_for("sharing.staff_create", patient_id=patient_id),
    }


def _card_context(**extra) -> dict:
    """What every share card needs (the list page, and the card alone after an action)."""
    now = utcnow()
    return {
        "now": now,
        "tomorrow": now.date() + timedelta(days=1),
        "describe_scope": describe_scope,
        "max_span": timedelta(days=services.MAX_DAYS),
        "card_errors": {},
        "card_notice": {},
        **extra,
    }


def _index(patient_id: int | None, *, status: int = 200, **extra) -> Response:
    actor = current_actor()
    try:
        shares = services.list_shares(actor, patient_id)
    except LookupError:
        abort(404)
    return render_page(
        "sharing/index.html",
        block="shares",
        patient=get_scoped(Patient, patient_id, actor.tenant_id),
        shares=shares,
        links=_links(patient_id),
        status=status,
        **_card_context(**extra),
    )


@bp.get("/portal/shares")
@patient_only
def portal_index():
    return _index(current_user.patient_id)


@bp.get("/patients/<int:patient_id>/shares")
@staff_sharers
def staff_index(patient_id: int):
    return _index(patient_id)


# --- making links ----------------------------------------------------------------------------------------


def _show_errors(form: ShareForm, errors: list[services.ShareError]) -> None:
    """The service's findings beside the form's own, each at its field; a field the form already marked
    keeps its own message (the same fault said once)."""
    for error in errors:
        if error.field == "days" and form.until.errors:
            continue  # "Until a date" without a date: the date's own message says it
        if error.field == "recipients":
            if error.message not in form.recipient_errors:
                form.recipient_errors.append(error.message)
            continue
        target = getattr(form, error.field, None) if error.field else None
        if target is not None and isinstance(target.errors, list | tuple):
            if not target.errors:
                target.errors = [error.message]
        elif error.message not in form.form_errors:
            form.form_errors.append(error.message)


def _form_page(
    form: ShareForm, patient_id: int, *, status: int = 200, added_row=None, preview: dict | None = None
) -> Response:
    """The form; with `preview` (the shared sections' context), the form and below it what the share
    would show (htmx swaps the form's section, preview included, in place)."""
    today = services.share_today(current_user.tenant_id)
    return render_page(
        "sharing/new.html",
        block="panel",
        form=form,
        patient=get_scoped(Patient, patient_id, current_user.tenant_id),
        links=_links(patient_id),
        added_row=added_row.id if added_row is not None else None,
        fragment=False,
        tomorrow=today + timedelta(days=1),
        last_day=today + timedelta(days=services.MAX_DAYS),
        status=status,
        **(preview or {"preview": False}),
    )


def _create(patient_id: int | None) -> Response:
    actor = current_actor()
    try:
        records = services.shareable_records(actor, patient_id)
    except LookupError:
        abort(404)
    form = ShareForm()
    form.set_records(records, current_user.tenant.timezone)
    if request.method == "GET":
        return _form_page(form, patient_id, added_row=form.recipients[0])  # the first name box has the focus
    if "add_row" in request.form:
        # "Add another" without JavaScript: one more row, what was typed kept, nothing made.
        return _form_page(form, patient_id, added_row=form.add_row())
    # Every fault at once: the form's own checks and the service's, each shown at its field.
    form_valid = form.validate()
    share_request = form.to_request(form.parsed_recipients())
    _show_errors(form, services.check_request(actor, patient_id, share_request))
    if not (form_valid and form.is_clean()):
        return _form_page(form, patient_id, status=INVALID)
    if "preview" in request.form:
        return _preview(form, patient_id, share_request)
    try:
        created = services.create_shares(actor, patient_id, share_request)
    except services.ShareError as error:  # the data changed between the check and the write
        _show_errors(form, getattr(error, "errors", [error]))
        return _form_page(form, patient_id, status=INVALID)
    links = []
    for item in created:
        url = services.share_url(item.token)
        links.append({"share": item.share, "url": url, "qr": qr_svg_data_uri(url), "emailed": item.emailed})
    response = render_page(
        "sharing/created.html",
        block="panel",
        created=links,
        patient=get_scoped(Patient, patient_id, actor.tenant_id),
        links=_links(patient_id),
    )
    response.headers["HX-Trigger"] = SHARES_CHANGED
    return response


def _preview(form: ShareForm, patient_id: int, share_request: services.ShareRequest) -> Response:
    """The form again with what the recipient would see below it: the provider's sections of a share
    not made (nothing is written but the audit of the read)."""
    try:
        content = preview_service.preview_share(current_actor(), patient_id, share_request)
    except services.ShareError as error:  # the data changed since the check
        _show_errors(form, getattr(error, "errors", [error]))
        return _form_page(form, patient_id, status=INVALID)
    except LookupError:
        abort(404)
    sections = sections_context(content.share, content, "all")
    return _form_page(form, patient_id, preview={**sections, "preview": True, "token": None})


@bp.route("/portal/shares/new", methods=["GET", "POST"])
@patient_only
def portal_create():
    return _create(current_user.patient_id)


@bp.route("/patients/<int:patient_id>/shares/new", methods=["GET", "POST"])
@staff_sharers
def staff_create(patient_id: int):
    return _create(patient_id)


@bp.get("/shares/recipient-row/<int:index>")
@sharers
def recipient_row(index: int):
    """The empty recipient row `index` for "Add another", and that button again, out of band, asking for
    the row after it (or saying the form is full)."""
    form = ShareForm(formdata=None)
    row = form.empty_row(index)
    if row is None:
        abort(404)
    return render_fragment(
        "sharing/new.html",
        "recipient_row",
        "add_recipients",
        form=form,
        row=row,
        added_row=row.id,
        fragment=True,
    )


# --- managing a link -------------------------------------------------------------------------------------


def _list_url(share) -> str:
    if current_user.is_patient:
        return url_for("sharing.portal_index", _anchor=f"share-{share.id}")
    return url_for("sharing.staff_index", patient_id=share.patient_id, _anchor=f"share-{share.id}")


def _after(share_id: int, change, notice: str) -> Response:
    """Run one change of a share and answer with its card (htmx) or the list (a plain form post); a
    refused change shows its reason on the card, with 422."""
    actor = current_actor()
    try:
        share = change(actor)
    except LookupError:
        abort(404)
    except services.ShareError as error:
        try:
            share = services.get_share(actor, share_id)
        except LookupError:
            abort(404)
        errors = {share.id: {error.field or "form": error.message}}
        if htmx:
            return render_page(
                "sharing/index.html", block="share_card", share=share, status=INVALID,
                **_card_context(card_errors=errors),
            )  # fmt: skip
        return _index(share.patient_id, status=INVALID, card_errors=errors)
    if htmx:
        return render_page(
            "sharing/index.html",
            block="share_card",
            share=share,
            **_card_context(card_notice={share.id: notice}),
        )
    flash(notice, "success")
    return redirect(_list_url(share), code=303)


@bp.post("/shares/<int:share_id>/revoke")
@sharers
def revoke(share_id: int):
    return _after(
        share_id, lambda actor: services.revoke(actor, share_id), "Revoked: the link no longer opens."
    )


@bp.post("/shares/<int:share_id>/extend")
@sharers
def extend(share_id: int):
    form = ExtendForm()

    def change(actor):
        if not form.validate():
            raise services.ShareError(" ".join(form.until.errors) or "Choose a date.", "until")
        return services.extend(actor, share_id, form.until.data)

    return _after(share_id, change, "The link now works longer.")


@bp.post("/shares/<int:share_id>/passcode")
@sharers
def change_passcode(share_id: int):
    form = PasscodeForm()

    def change(actor):
        if not form.validate():
            raise services.ShareError(" ".join(form.passcode.errors), "passcode")
        return services.change_passcode(actor, share_id, "" if form.remove.data else form.passcode.data)

    notice = (
        "Passcode removed." if request.form.get("remove") else "Passcode changed; the link stays the same."
    )
    return _after(share_id, change, notice)


@bp.post("/shares/<int:share_id>/send")
@sharers
def send_again(share_id: int):
    return _after(
        share_id,
        lambda actor: services.send_again(actor, share_id),
        "A new link was emailed; the link emailed before no longer works.",
    )


@bp.get("/shares/<int:share_id>")
@sharers
def log(share_id: int):
    """A link's access log: its own page, or the log alone for the list's expandable section."""
    try:
        share, visits = services.access_log(current_actor(), share_id)
    except LookupError:
        abort(404)
    return render_page(
        "sharing/log.html",
        block="log",
        share=share,
        visits=visits,
        links=_links(share.patient_id),
        **_card_context(),
    )


# --- the clinic's overview -------------------------------------------------------------------------------


@bp.get("/admin/sharing")
@requires("share.overview")
def overview():
    return render_page("sharing/overview.html", overview=sharing_overview(current_actor()))


# --- template helpers ------------------------------------------------------------------------------------


bp.add_app_template_global(services.share_time, "share_time")
bp.add_app_template_global(services.share_time_span, "share_time_span")
bp.add_app_template_filter(describe_user_agent, "browser")
