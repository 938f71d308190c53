"""The outbox page: with the embedded mail backend, admins read what the app would have emailed."""

import re

from flask import Blueprint, abort, current_app
from markupsafe import Markup, escape
from flask_login import current_user

from ..access import admin_only
from ..web import render_page
from .services import outbox_entries, outbox_message

bp = Blueprint("mail", __name__, url_prefix="/outbox")


@bp.get("")
@admin_only
def outbox():
    using_outbox = current_app.config["MAIL_BACKEND"] == "outbox"
    entries = outbox_entries(current_user.tenant_id) if using_outbox else []
    return render_page("mail/outbox.html", entries=entries, using_outbox=using_outbox)


@bp.get("/<name>")
@admin_only
def show(name: str):
    found = outbox_message(current_user.tenant_id, name)
    if found is None:
        abort(404)
    entry, body = found
    return render_page("mail/message.html", entry=entry, body=body)


@bp.app_template_filter("linkify_local")
def linkify_local(text: str) -> Markup:
    """Escape a plain-text email and turn links into this app into clickable links (nothing else)."""
    prefix = re.escape(current_app.config["PUBLIC_URL"])
    escaped = str(escape(text))
    return Markup(re.sub(rf"({prefix}/[A-Za-z0-9_\-/]+)", r'<a href="\1">\1</a>', escaped))
