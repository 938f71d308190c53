"""The web layer shared by every area: request ids, sign-in from the session cookie, access checks,
security headers, page-or-fragment rendering, error pages and template helpers."""

from __future__ import annotations

import secrets
import uuid
from datetime import date, datetime
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo

from flask import Blueprint, Flask, Response, current_app, g, redirect, render_template, request, url_for
from flask_login import current_user
from flask_wtf.csrf import CSRFError
from jinja2_fragments.flask import render_block, render_blocks
from werkzeug.exceptions import HTTPException

from .access import enforce_access, public
from .errors import DomainError, NotAllowed, NotFound
from .extensions import htmx, login_manager
from .permissions import AnonymousVisitor

bp = Blueprint("web", __name__)

ERROR_TEXT = {
    400: ("Bad request", "The request could not be understood. Go back and try again."),
    401: ("Please sign in", "Your session has ended. Sign in again to continue."),
    403: ("Not allowed", "Your account cannot open this page."),
    404: ("Not found", "There is nothing here, or it is not yours to see."),
    405: ("Not allowed", "This address does not accept that kind of request."),
    409: ("Changed meanwhile", "Someone changed this at the same time. Reload the page and try again."),
    413: ("Too large", "What you sent is larger than the clinic accepts."),
    422: ("Please check what you sent", "Something in the request cannot be accepted. Nothing was changed."),
    429: ("Too many attempts", "Too many attempts in a short time. Wait a few minutes and try again."),
    500: ("Something went wrong", "We could not finish this. Nothing was changed; try again in a moment."),
}
STATIC_PREFIX = "/static/"


def render_page(template: str, *, block: str | None = None, status: int = 200, **context) -> Response:
    """Render a whole page, or only `block` of the same template for an htmx request (not a boosted one)."""
    if block and htmx and not htmx.boosted:
        body = render_block(template, block, **context)
    else:
        body = render_template(template, **context)
    response = current_app.make_response((body, status))
    response.vary.add("HX-Request")
    return response


def render_fragment(template: str, *blocks: str, status: int = 200, **context) -> Response:
    """Render only `blocks` of a page template, in order, for an endpoint that only htmx asks (one more row
    of a form, with the button that asks for the next): the fragment stays part of its page's template."""
    return current_app.make_response((render_blocks(template, list(blocks), **context), status))


def safe_next(target: str | None, default: str) -> str:
    """A local path to go back to after sign-in; never another site.

    Browsers drop tabs and newlines from URLs, so `/\t/evil.com` would become `//evil.com`: any control
    character, space or backslash makes the target unusable.
    """
    if not target or not target.startswith("/") or target.startswith("//"):
        return default
    if any(ord(ch) <= 32 or ord(ch) == 127 or ch == "\\" for ch in target):
        return default
    parts = urlsplit(target)
    if parts.scheme or parts.netloc:
        return default
    return target


def home_for(user) -> str:
    return url_for("portal.home") if user.is_patient else url_for("patients.index")


@bp.get("/")
@public
def index():
    if not current_user.is_authenticated:
        return redirect(url_for("accounts.login"))
    return redirect(home_for(current_user))


@bp.get("/healthz")
@public
def healthz():
    return {"status": "ok"}


def _load_user_from_cookie(_request):
    from .accounts import mfa
    from .accounts.sessions import load_live_session

    row = load_live_session(request.cookies.get(current_app.config["AUTH_COOKIE_NAME"]))
    if row is None:
        return None
    g.user_session = row
    g.mfa_enrolment_required = mfa.is_required(row.user) and not row.user.mfa_enabled
    return row.user


def set_auth_cookie(response: Response, raw: str) -> Response:
    config = current_app.config
    response.set_cookie(
        config["AUTH_COOKIE_NAME"],
        raw,
        httponly=True,
        secure=config["SESSION_COOKIE_SECURE"],
        samesite="Lax",
        max_age=int(config["SESSION_ABSOLUTE_TIMEOUT"].total_seconds()),
    )
    return response


def clear_auth_cookie(response: Response) -> Response:
    response.delete_cookie(
        current_app.config["AUTH_COOKIE_NAME"],
        httponly=True,
        secure=current_app.config["SESSION_COOKIE_SECURE"],
        samesite="Lax",
    )
    return response


def start_request() -> None:
    incoming = request.headers.get("X-Request-ID", "")
    g.request_id = incoming if incoming.isalnum() and len(incoming) <= 64 else uuid.uuid4().hex


def csp_nonce() -> str:
    """This response's CSP nonce, made on first use (error pages can render before any hook ran)."""
    if "csp_nonce" not in g:
        g.csp_nonce = secrets.token_urlsafe(16)
    return g.csp_nonce


def storage_origins(config) -> str:
    """Where the browser sends and fetches file bytes besides the app: the S3 endpoint (presigned uploads,
    downloads, previews), as CSP sources; empty on the local backend."""
    if (config.get("STORAGE_BACKEND") or "local").lower() != "s3":
        return ""
    endpoint = config.get("S3_ENDPOINT_URL")
    if endpoint:
        parts = urlsplit(endpoint)
        return f"{parts.scheme}://{parts.netloc}"
    bucket, region = config.get("S3_BUCKET", ""), config.get("S3_REGION") or "us-east-1"
    return f"https://{bucket}.s3.amazonaws.com https://{bucket}.s3.{region}.amazonaws.com"


def _security_headers(response: Response) -> Response:
    nonce = csp_nonce()
    files = storage_origins(current_app.config)
    extra = f" {files}" if files else ""
    # A view may set its own policy (file responses are sandboxed and may be framed by the app's pages).
    response.headers.setdefault(
        "Content-Security-Policy",
        "default-src 'self'; "
        f"script-src 'self' 'nonce-{nonce}'; "
        f"style-src 'self'; img-src 'self' data: blob:{extra}; font-src 'self'; connect-src 'self'{extra}; "
        f"frame-src 'self'{extra}; "
        "object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'",
    )
    response.headers["Strict-Transport-Security"] = "max-age=63072000; includeSubDomains"
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["Referrer-Policy"] = "no-referrer"
    response.headers.setdefault("X-Frame-Options", "DENY")
    response.headers["Cross-Origin-Opener-Policy"] = "same-origin"
    response.headers["Permissions-Policy"] = "camera=(), microphone=(), geolocation=()"
    response.headers["X-Request-ID"] = g.get("request_id", "")
    if not request.path.startswith(STATIC_PREFIX):
        # Every dynamic page may show patient data: never keep it in a browser or proxy cache.
        response.headers["Cache-Control"] = "no-store"
        response.headers["Pragma"] = "no-cache"
    return response


def _error_page(error: HTTPException):
    code = error.code or 500
    title, text = ERROR_TEXT.get(code, (error.name, error.description))
    if isinstance(error, CSRFError):
        text = "This form has expired. Reload the page and try again."
    return render_template("error.html", code=code, title=title, text=text), code


def _domain_error_page(error: DomainError | NotAllowed | NotFound):
    """The answer to a domain error no view caught: its status (errors.py), and for input the person can
    fix (a DomainError) its message, since that is written for them. Nothing was committed: services
    raise before they commit."""
    code = error.status
    title, text = ERROR_TEXT.get(code, ERROR_TEXT[422])
    if isinstance(error, DomainError) and error.message:
        text = error.message
    return render_template("error.html", code=code, title=title, text=text), code


def _server_error(error: Exception):
    current_app.logger.exception("unhandled error (request %s)", g.get("request_id"))
    title, text = ERROR_TEXT[500]
    return render_template("error.html", code=500, title=title, text=text), 500


def localtime(value: datetime | None, fmt: str = "%d %b %Y, %H:%M") -> str:
    """Show a UTC time from the database in the clinic's time zone."""
    if value is None:
        return ""
    zone = "UTC"
    if current_user and current_user.is_authenticated:
        zone = current_user.tenant.timezone
    return value.replace(tzinfo=ZoneInfo("UTC")).astimezone(ZoneInfo(zone)).strftime(fmt)


def format_date(value: date | None, fmt: str = "%d %b %Y") -> str:
    return value.strftime(fmt) if value else ""


def install(app: Flask) -> None:
    login_manager.session_protection = None
    login_manager.request_loader(_load_user_from_cookie)
    login_manager.anonymous_user = AnonymousVisitor
    app.before_request(enforce_access)
    app.after_request(_security_headers)
    app.register_error_handler(HTTPException, _error_page)
    app.register_error_handler(Exception, _server_error)
    # Domain errors (healthcrm/errors.py) are answered the same in every area: 422 / 409, 403, 404.
    for domain_error in (DomainError, NotAllowed, NotFound):
        app.register_error_handler(domain_error, _domain_error_page)
    app.jinja_env.filters["localtime"] = localtime
    app.jinja_env.filters["day"] = format_date

    @app.context_processor
    def _template_globals() -> dict:
        return {
            "csp_nonce": csp_nonce(),
            "today": date.today(),
            "has_labs_page": "labs.index" in current_app.view_functions,
        }
