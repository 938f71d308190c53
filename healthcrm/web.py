"""The web layer shared by every area: request ids, sign-in from the session cookie, access checks, the
cross-site refusal, security headers, page-or-fragment rendering, error pages (with audited denials),
token redaction in the request log, and template helpers."""

from __future__ import annotations

import logging
import re
import secrets
import uuid
from datetime import date, datetime
from urllib.parse import urlsplit

import redis
from flask import (
    Blueprint,
    Flask,
    Response,
    current_app,
    g,
    has_request_context,
    jsonify,
    redirect,
    render_template,
    request,
    url_for,
)
from flask_login import current_user
from flask_wtf.csrf import CSRFError
from jinja2_fragments.flask import render_block, render_blocks
from limits.errors import StorageError
from werkzeug.exceptions import Forbidden, HTTPException

from . import navigation
from .access import (
    TokenRefused,
    TooManyTokenFailures,
    authenticate_token,
    current_actor,
    enforce_access,
    is_api_request,
    is_background,
    presents_token,
    public,
    token_user,
)
from .accounts import mfa
from .accounts.sessions import load_live_session
from .audit.denials import patient_named_by
from .audit.services import DENIED, record_event
from .clock import DISPLAY_FORMAT, clinic_today, format_clinic_time
from .errors import DomainError, NotAllowed, NotFound
from .extensions import csrf, db, htmx, login_manager
from .permissions import AnonymousVisitor
from .portal import clinic, notifications

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
    503: (
        "Temporarily unavailable",
        "A service this page needs is not answering, so nothing was done. Try again in a few minutes.",
    ),
}
CROSS_SITE_TEXT = (
    "This request came from another website, so it was not carried out. If you meant to do this, open "
    "HealthCRM yourself and try again there."
)
STATIC_PREFIX = "/static/"
STATE_CHANGING_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
log = logging.getLogger(__name__)


class CrossSiteRequest(Forbidden):
    """A state-changing request sent by another site's page (its Origin or Sec-Fetch-Site says so)."""


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


def _load_user(_request):
    """Flask-Login's request loader: the token's person for a request presenting a token (access.py),
    else the session cookie's."""
    if presents_token():
        return token_user()
    row = load_live_session(
        request.cookies.get(current_app.config["AUTH_COOKIE_NAME"]), touch=not is_background(request.endpoint)
    )
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
    # A client's own X-Request-ID would let it pick the id its audit events carry (or collide with
    # another request's): it is believed only when our own proxy set it (TRUST_PROXY_COUNT > 0).
    incoming = request.headers.get("X-Request-ID", "") if current_app.config["TRUST_PROXY_COUNT"] else ""
    g.request_id = incoming if incoming.isalnum() and len(incoming) <= 64 else uuid.uuid4().hex


def _origin_of(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}".lower()


def refuse_cross_site_requests() -> None:
    """before_request: a POST/PUT/PATCH/DELETE that another site's page sent is refused with 403, even
    with a valid CSRF token (one leaked in a page, a log or a referrer is then useless elsewhere).

    `Sec-Fetch-Site: cross-site` says so outright. An `Origin` must be ours (PUBLIC_URL or this request's
    own host); `Origin: null` is not a verdict, since browsers send it for our own forms too under
    `Referrer-Policy: no-referrer`. Requests without either header (non-browser clients) pass: CSRF
    tokens still guard them.
    """
    if request.method not in STATE_CHANGING_METHODS:
        return None
    if request.headers.get("Sec-Fetch-Site", "").lower() == "cross-site":
        raise CrossSiteRequest()
    origin = request.headers.get("Origin", "").strip()
    if origin and origin != "null":
        ours = {_origin_of(current_app.config["PUBLIC_URL"]), _origin_of(request.host_url)}
        if origin.rstrip("/").lower() not in ours:
            raise CrossSiteRequest()
    return None


def check_csrf() -> None:
    """before_request: Flask-WTF's CSRF check (its own hook is off: WTF_CSRF_CHECK_DEFAULT), for every
    request but those a token authenticated. A token is sent in a header a browser never adds by itself, so
    another site cannot make a browser send one; a cookie session still needs the form's token."""
    if not current_app.config["WTF_CSRF_ENABLED"] or g.get("api_token") is not None:
        return None
    csrf.protect(apply_exemptions=True)
    return None


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


def error_answer(code: int, title: str, text: str):
    """An error's answer: the error page, or for an API request (access.is_api_request) JSON."""
    if has_request_context() and is_api_request():
        response = jsonify(error=title, message=text, status=code)
        response.status_code = code
        return response
    return render_template("error.html", code=code, title=title, text=text), code


def _error_page(error: HTTPException):
    code = error.code or 500
    title, text = ERROR_TEXT.get(code, (error.name, error.description))
    if isinstance(error, CSRFError):
        text = "This form has expired. Reload the page and try again."
    if isinstance(error, TokenRefused):
        title, text = "Not authenticated", error.description
    if isinstance(error, CrossSiteRequest):
        text = CROSS_SITE_TEXT
    elif code == 403 or (code == 404 and g.get("other_clinic_resource")):
        _audit_denial(code)
    answer = current_app.make_response(error_answer(code, title, text))
    if isinstance(error, TokenRefused) or (code == 401 and is_api_request()):
        # RFC 6750: the scheme to use, and why the token sent was refused.
        detail = f', error="{error.error}"' if getattr(error, "error", None) else ""
        answer.headers["WWW-Authenticate"] = f'Bearer realm="HealthCRM"{detail}'
    if isinstance(error, TooManyTokenFailures):
        answer.headers["Retry-After"] = "900"
    return answer


def audit_refusal(error: Exception) -> None:
    """Audit a refusal that a domain error answers (a service's NotAllowed, a NotFound of another clinic's
    row) as the access checks' 403 and 404 are: for views and handlers that answer it themselves."""
    if isinstance(error, NotAllowed):
        _audit_denial(403)
    elif isinstance(error, NotFound) and g.get("other_clinic_resource"):
        _audit_denial(404)


def _audit_denial(code: int) -> None:
    """Write a DENIED audit event for a signed-in user refused a page (403) or another clinic's row (404).

    The request's own transaction is rolled back first (nothing it did may be kept), then the event is
    committed on its own, so the denial is on record although the request fails. A refused URL that names a
    patient of the user's own clinic (healthcrm/audit/denials.py) names them in the event; another clinic's
    row never does.
    """
    db.session.rollback()
    if not current_user.is_authenticated:
        return
    resource_type, resource_id = g.get("other_clinic_resource") or ("endpoint", request.endpoint)
    try:
        record_event(
            current_actor(),
            "access.denied",
            resource_type=resource_type,
            resource_id=None if resource_id is None else str(resource_id)[:64],
            patient_id=patient_named_by(request.view_args, current_user.tenant_id),
            outcome=DENIED,
            changed_fields=[f"http_{code}"],
        )
        db.session.commit()
    except Exception:
        # The refusal itself must still be answered; the failure is in the log.
        db.session.rollback()
        log.exception("could not audit a denial (request %s)", g.get("request_id"))


def _service_unavailable(error: Exception):
    """The rate-limit store (Redis) or the job queue is down: a 503 page. Never a 500, and never running
    without limits (the limiter does not swallow storage errors)."""
    log.error("a backing service is down (request %s): %r", g.get("request_id"), error)
    title, text = ERROR_TEXT[503]
    response = current_app.make_response(error_answer(503, title, text))
    response.headers["Retry-After"] = "60"
    return response


def domain_error_page(error: DomainError | NotAllowed | NotFound):
    """The answer to a domain error no view caught: its status (errors.py), and for input the person can
    fix (a DomainError) its message, since that is written for them. Nothing was committed: services
    raise before they commit. A refusal (NotAllowed, another clinic's row) is audited as denied."""
    audit_refusal(error)
    code = error.status
    title, text = ERROR_TEXT.get(code, ERROR_TEXT[422])
    if isinstance(error, DomainError):
        title = error.title or title
        text = error.message or text
    return error_answer(code, title, text)


def _server_error(error: Exception):
    current_app.logger.exception("unhandled error (request %s)", g.get("request_id"))
    title, text = ERROR_TEXT[500]
    return error_answer(500, title, text)


# --- tokens never reach the request log -----------------------------------------------------------------

# Paths whose next segment is a secret: share links, password resets, invitations.
TOKEN_PATH = re.compile(r"(/(?:s|reset|invitation)/)[^/?#\s\"']+")
# A personal API token anywhere (one pasted into a URL or a header that gets logged): its prefix says so.
API_TOKEN = re.compile(r"hcrm_[A-Za-z0-9_-]{8,}")
REDACTED = "[redacted]"


def redact_tokens(text: str) -> str:
    """`text` with every share, reset and invitation token in a URL path, and every API token, replaced
    by [redacted]."""
    return API_TOKEN.sub(f"hcrm_{REDACTED}", TOKEN_PATH.sub(rf"\1{REDACTED}", text))


class RedactTokens(logging.Filter):
    """A logging filter that redacts tokens in a record's message and arguments (the Werkzeug dev
    server's request line, gunicorn's access log, anything else that logs a path)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.msg, str):
            record.msg = redact_tokens(record.msg)
        if isinstance(record.args, tuple):
            record.args = tuple(redact_tokens(arg) if isinstance(arg, str) else arg for arg in record.args)
        elif type(record.args) is dict:  # not gunicorn's SafeAtoms, whose lookups a plain dict would lose
            record.args = {
                key: redact_tokens(value) if isinstance(value, str) else value
                for key, value in record.args.items()
            }
        return True


def install_log_redaction() -> None:
    """Put the filter on the loggers that print request paths, and on the root handlers every other
    logger of the app ends in (once per process)."""
    # gunicorn's access log redacts in its own logger class (gunicorn.conf.py).
    targets = [logging.getLogger(name) for name in ("werkzeug", "gunicorn.error")]
    targets += logging.getLogger().handlers
    for target in targets:
        if not any(isinstance(existing, RedactTokens) for existing in target.filters):
            target.addFilter(RedactTokens())


def _viewer_zone() -> str | None:
    """The signed-in user's clinic zone (UTC for a page nobody is signed in to)."""
    if current_user and current_user.is_authenticated:
        return current_user.tenant.timezone
    return None


def localtime(value: datetime | None, fmt: str = DISPLAY_FORMAT) -> str:
    """Show a UTC time from the database in the clinic's time zone."""
    return format_clinic_time(value, _viewer_zone(), fmt)


def format_date(value: date | None, fmt: str = "%d %b %Y") -> str:
    return value.strftime(fmt) if value else ""


def install(app: Flask) -> None:
    login_manager.session_protection = None
    login_manager.request_loader(_load_user)
    # Right after the request gets its id, before the CSRF check: a cross-site post is answered 403 "came
    # from another website", not 400 "the form has expired". Then the API token (access.py), then CSRF for
    # everything a token did not authenticate (check_csrf replaces CSRFProtect's own hook).
    app.config["WTF_CSRF_CHECK_DEFAULT"] = False
    hooks = app.before_request_funcs.setdefault(None, [])
    first = hooks.index(start_request) + 1 if start_request in hooks else 0
    hooks[first:first] = [refuse_cross_site_requests, authenticate_token, check_csrf]
    login_manager.anonymous_user = AnonymousVisitor
    app.before_request(enforce_access)
    app.after_request(_security_headers)
    app.register_error_handler(HTTPException, _error_page)
    app.register_error_handler(StorageError, _service_unavailable)
    app.register_error_handler(redis.RedisError, _service_unavailable)
    app.register_error_handler(Exception, _server_error)
    install_log_redaction()
    # Domain errors (healthcrm/errors.py) are answered the same in every area: 422 / 409, 403, 404.
    for domain_error in (DomainError, NotAllowed, NotFound):
        app.register_error_handler(domain_error, domain_error_page)
    app.jinja_env.filters["localtime"] = localtime
    app.jinja_env.filters["day"] = format_date
    app.jinja_env.globals.update(
        portal_nav=navigation.portal_nav,
        care_nav=navigation.care_nav,
        care_queues=navigation.care_queues,
        care_admin_nav=navigation.care_admin_nav,
        staff_notifications=navigation.staff_notifications,
        clinic_hours=clinic.hours_lines,
        unread_notification_count=notifications.unread_count,
        has_endpoint=lambda endpoint: endpoint in current_app.view_functions,
    )

    @app.context_processor
    def _template_globals() -> dict:
        return {
            "csp_nonce": csp_nonce(),
            "today": clinic_today(_viewer_zone()),
            "has_labs_page": "labs.index" in current_app.view_functions,
        }
