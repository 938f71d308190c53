"""The outbox page: with the embedded mail backend, admins read what the app would have emailed."""

import re

from flask import Blueprint, abort, current_app
from flask_login import current_user
from markupsafe import Markup, escape

from ..access import requires
from ..web import render_page
from .services import outbox_entries, outbox_message

bp = Blueprint("mail", __name__, url_prefix="/outbox")
# What may follow the app's address in a link we make clickable: a path and a query, nothing that could
# leave an attribute; the last character is not punctuation that ends a sentence.
_LINK_REST = r"/[A-Za-z0-9_\-/.~%?=&+]*[A-Za-z0-9_\-/=]"
_LINK_HTML = Markup('<a href="{0}">{0}</a>')


@bp.get("")
@requires("outbox.read")
def outbox():
    using_outbox = current_app.config["MAIL_BACKEND"] == "outbox"
    entries = outbox_entries(current_user.tenant_id) if using_outbox else []
    return render_page("mail/outbox.html", entries=entries, using_outbox=using_outbox)


@bp.get("/<name>")
@requires("outbox.read")
def show(name: str):
    found = outbox_message(current_user.tenant_id, name)
    if found is None:
        abort(404)
    entry, body = found
    return render_page("mail/message.html", entry=entry, body=body)


@bp.app_template_filter("linkify_local")
def linkify_local(text: str) -> Markup:
    """Escape a plain-text email and turn links into this app into clickable links (nothing else)."""
    link = re.compile(re.escape(current_app.config["PUBLIC_URL"]) + _LINK_REST)
    html = Markup()
    position = 0
    for match in link.finditer(text):
        html += escape(text[position : match.start()]) + _LINK_HTML.format(match.group())
        position = match.end()
    return html + escape(text[position:])
