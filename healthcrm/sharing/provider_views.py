"""The provider's side of a share link, `/s/<token>`: no account, only the link.

A provider goes: the landing page (what is shared, by whom, until when) → "Continue" starts a visit (a
cookie for this link's path only) → the passcode, then the emailed code, when the share asks for them →
`services.admit` counts the open → the shared view, tab by tab (htmx swaps a block of the same template;
every tab is also a plain link), the print view, watermarked previews of the files and, when the patient
allowed it, downloads and exports.

A guess learns nothing: unknown, expired, revoked and used-up links answer the site's own 404 page, and every
route is rate-limited per client. Everything shown comes from `shared_content`, so the share's scope holds
on every path. When the share does not allow downloads, no answer carries a file's own bytes: previews are
PNG renderings with the watermark.
"""

from __future__ import annotations

import io
from collections.abc import Callable, Iterator
from datetime import datetime
from typing import IO

from flask import Blueprint, Response, abort, current_app, g, redirect, request, url_for

from ..access import public
from ..accounts.models import Tenant
from ..audit.services import Actor
from ..clock import format_clinic_time, utcnow
from ..extensions import db, htmx, limiter
from ..files import services as files
from ..files.responses import file_response
from ..files.storage import attachment_disposition, get_storage
from ..jobs.models import FINISHED, Job
from ..jobs.queue import enqueue
from ..jobs.views import STOP_POLLING
from ..records.flowsheet import build_flowsheet, flowsheet_args
from ..records.labs import FLAG_LABELS, LabOverview, LabTest, group_by_test
from ..storage_cost import restores
from ..tenancy import get_scoped
from ..web import render_page
from . import file_previews, services
from .content import SharedContent, covered_types, shared_attachment, shared_content
from .exports import labs_csv
from .models import EVENT_DOWNLOAD, EVENT_EXPORT, ShareLink, ShareVisit
from .tasks import describe_scope
from .watermark import (
    PDF_MAX_PAGES,
    watermark_text,
)

bp = Blueprint("provider", __name__, url_prefix="/s")

VISIT_COOKIE = "hc_share"
PAGES_LIMIT = "60 per minute"  # every GET of /s/…, per client
CHECKS_LIMIT = "10 per minute"  # passcode and code posts, per client
STARTS_LIMIT = "10 per minute"  # "Continue" and export posts, per client
EXPORT_JOB = "sharing.export_pdf"
INVALID = 422
# The tabs of the shared view, and the record types (any of them) that bring each one.
TABS = {
    "summary": ("Summary", None),
    "labs": ("Lab results", {"labs"}),
    "records": ("Records", {"visits", "prescriptions"}),
    "files": ("Files", {"attachments", "imaging"}),
    "scores": ("Scores", {"labs"}),
}
PRINT = "all"  # the print view: every tab of the share on one page
# Answers that are bytes (previews, downloads): nothing in them runs, and no page may frame them.
BYTES_CSP = "sandbox; default-src 'none'; frame-ancestors 'none'"
# Copies of the watermark text in the page overlay (spread over a layer twice the screen, so about a quarter
# of them are in view): a few on every screen and every printed page, not a wall of text over the findings.
SHOWN_PER_WATERMARK_LAYER = 32
# The landing page and the checks show nothing of the patient's data, so they carry no watermark.
NO_WATERMARK = {"watermark": "", "watermark_copies": 0}


def _rate(name: str, default: str) -> Callable[[], str]:
    return lambda: current_app.config.get(name, default)


pages_limit = limiter.shared_limit(
    _rate("SHARE_PAGES_LIMIT", PAGES_LIMIT), scope="share-pages", methods=["GET"]
)
checks_limit = limiter.shared_limit(
    _rate("SHARE_CHECKS_LIMIT", CHECKS_LIMIT), scope="share-checks", methods=["POST"]
)
starts_limit = limiter.shared_limit(
    _rate("SHARE_STARTS_LIMIT", STARTS_LIMIT), scope="share-starts", methods=["POST"]
)


@bp.after_app_request
def _provider_headers(response: Response) -> Response:
    """Every answer under /s/, also a 404 that matched no route here: never indexed, never cached. (web.py
    sets Referrer-Policy and no-store on every page, and a CSP with frame-ancestors 'none'.)"""
    if request.path.startswith(bp.url_prefix + "/"):
        response.headers["X-Robots-Tag"] = "noindex, nofollow"
        response.headers["Cache-Control"] = "no-store"
    return response


# --- who is asking ------------------------------------------------------------------------------------------


def _client() -> dict[str, str | None]:
    """Who is asking, for the share's access log and the audit event (with this request's id)."""
    return {
        "ip": request.remote_addr,
        "user_agent": request.headers.get("User-Agent"),
        "request_id": g.get("request_id"),
    }


def _provider_actor(share: ShareLink) -> Actor:
    """The share's recipient as the audit log names them (as `services.log` does)."""
    client = _client()
    return Actor(
        tenant_id=share.tenant_id,
        role="provider",
        share_link_id=share.id,
        ip=client["ip"],
        user_agent=client["user_agent"],
        request_id=client["request_id"],
    )


def _retrieve_archived(share: ShareLink, versions) -> None:
    """Archived files the page shows are retrieved on the clinic's behalf (Standard, once per file): the
    recipient cannot choose a speed or a price, and sees "being retrieved" with the time it will be ready."""
    restores.retrieve_for_share(share, list(versions), actor=_provider_actor(share))


def _open(token: str) -> tuple[ShareLink, ShareVisit | None]:
    """The link's share and this browser's visit (None before "Continue"). 404 when the link opens
    nothing, and when its opens are used up, unless this browser is one of those it admitted."""
    share = services.resolve(token, allow_used_up=True)
    if share is None:
        abort(404)
    visit = services.find_visit(share, request.cookies.get(VISIT_COOKIE))
    if share.status(utcnow()) == "used up" and not (visit and visit.opened):
        abort(404)
    return share, visit


def _admitted(token: str, *, page: bool = True) -> tuple[ShareLink, ShareVisit]:
    """The share and this browser's admitted visit. A page sends a browser that is not (yet, or any
    more) admitted to the landing page; file bytes answer 404."""
    share, visit = _open(token)
    if visit is None or not visit.opened:
        if not page:
            abort(404)
        abort(_go(url_for(".landing", token=token)))
    return share, visit


def _go(url: str) -> Response:
    """A redirect after a post or to another step; htmx is told to load the whole page there."""
    if htmx and not htmx.boosted:
        response = current_app.make_response(("", 200))
        response.headers["HX-Redirect"] = url
        return response
    return redirect(url, code=303)


def _clinic(share: ShareLink) -> Tenant:
    return db.session.get(Tenant, share.tenant_id)


def _clinic_time(zone: str) -> Callable[..., str]:
    """A formatter of stored (naive UTC) times in the clinic's zone, for the pages of one share: to the
    minute with the zone unless the page asks for less (a visit's day)."""

    def clinic_time(value: datetime | None, fmt: str = services.TIME_WITH_ZONE) -> str:
        return format_clinic_time(value, zone, fmt)

    return clinic_time


def _set_visit_cookie(response: Response, token: str, cookie: str) -> Response:
    response.set_cookie(
        VISIT_COOKIE,
        cookie,
        max_age=int(services.VISIT_LIFETIME.total_seconds()),
        path=f"/s/{token}",
        secure=current_app.config["SESSION_COOKIE_SECURE"],
        httponly=True,
        samesite="Lax",
    )
    return response


# --- landing and checks -------------------------------------------------------------------------------------


@bp.get("/<token>")
@public
@pages_limit
def landing(token: str):
    """What is shared, by whom, until when, and "Continue"; an admitted browser goes straight in."""
    share, visit = _open(token)
    if visit is not None and visit.opened:
        return redirect(url_for(".tab", token=token, tab="summary"))
    clinic = _clinic(share)
    return render_page(
        "sharing/provider/landing.html",
        token=token,
        share=share,
        clinic=clinic,
        when=_clinic_time(clinic.timezone),
        what=describe_scope(share),
        paused=services.is_paused(share),
        **NO_WATERMARK,
    )


@bp.post("/<token>")
@public
@starts_limit
def start(token: str):
    """Start this browser's visit (or carry on with it) and go to the checks."""
    share, visit = _open(token)
    response = _go(url_for(".steps", token=token))
    if visit is None:
        _visit, cookie = services.start_visit(share)
        _set_visit_cookie(response, token, cookie)
    return response


def _steps_page(
    token: str, share: ShareLink, visit: ShareVisit, *, status: int = 200, **messages
) -> Response:
    clinic = _clinic(share)
    return render_page(
        "sharing/provider/steps.html",
        status=status,
        token=token,
        share=share,
        visit=visit,
        clinic=clinic,
        when=_clinic_time(clinic.timezone),
        paused=services.is_paused(share),
        passcode_error=messages.get("passcode_error", ""),
        code_error=messages.get("code_error", ""),
        code_sent=messages.get("code_sent", False),
        code_minutes=int(services.CODE_LIFETIME.total_seconds() // 60),
        code_digits=services.CODE_DIGITS,
        **NO_WATERMARK,
    )


def _admit(token: str, share: ShareLink, visit: ShareVisit) -> Response:
    """Count this visit as one open and go in; 404 when the share's opens are used up."""
    if not services.admit(share, visit, **_client()):
        abort(404)
    return _go(url_for(".tab", token=token, tab="summary"))


@bp.get("/<token>/check")
@public
@pages_limit
def steps(token: str):
    """The checks this visit still has to pass; none left, it is admitted."""
    share, visit = _open(token)
    if visit is None:
        return redirect(url_for(".landing", token=token))
    if visit.opened:
        return redirect(url_for(".tab", token=token, tab="summary"))
    if visit.passcode_ok and visit.email_ok:
        return _admit(token, share, visit)
    return _steps_page(token, share, visit, code_sent=request.args.get("sent") == "1")


@bp.post("/<token>/passcode")
@public
@checks_limit
def passcode(token: str):
    share, visit = _open(token)
    if visit is None:
        return _go(url_for(".landing", token=token))
    if visit.passcode_ok or share.passcode_hash is None:
        return _go(url_for(".steps", token=token))
    if services.is_paused(share):
        return _paused_page(token, share, visit)
    checked = services.check_passcode(share, visit, request.form.get("passcode", ""), **_client())
    if checked:
        return _go(url_for(".steps", token=token))
    if checked.paused_until:  # paused now (this was the last wrong one in a row, or another request's was)
        db.session.refresh(share)
        return _paused_page(token, share, visit)
    tries = "1 more try" if checked.tries_left == 1 else f"{checked.tries_left} more tries"
    # 401, with the tries left before the pause, as SMART Health Links answer a wrong passcode.
    return _steps_page(
        token,
        share,
        visit,
        status=401,
        passcode_error=f"That passcode is not right. {tries} before this link pauses for "
        f"{int(services.PAUSE_FOR.total_seconds() // 60)} minutes.",
    )


def _paused_page(token: str, share: ShareLink, visit: ShareVisit) -> Response:
    """429 while the link is paused, saying when it can be tried again (Retry-After in seconds)."""
    response = _steps_page(token, share, visit, status=429)
    if share.paused_until:
        wait = max(1, int((share.paused_until - utcnow()).total_seconds()))
        response.headers["Retry-After"] = str(wait)
    return response


@bp.post("/<token>/code/send")
@public
@checks_limit
def send_code(token: str):
    """Email a one-time code, only ever to the address the patient entered (the job makes the code)."""
    share, visit = _open(token)
    if visit is None:
        return _go(url_for(".landing", token=token))
    if not share.verify_email or visit.email_ok or not visit.passcode_ok:
        return _go(url_for(".steps", token=token))
    client = _client()
    services.send_code(share, ip=client["ip"], user_agent=client["user_agent"])
    return _go(url_for(".steps", token=token, sent=1))


@bp.post("/<token>/code")
@public
@checks_limit
def code(token: str):
    share, visit = _open(token)
    if visit is None:
        return _go(url_for(".landing", token=token))
    if visit.email_ok or not visit.passcode_ok:
        return _go(url_for(".steps", token=token))
    if services.verify_code(share, visit, request.form.get("code", ""), **_client()):
        return _go(url_for(".steps", token=token))
    return _steps_page(
        token,
        share,
        visit,
        status=INVALID,
        code_sent=True,
        code_error="That code is not right, or it has expired or was used already. Ask for a new one.",
    )


# --- the shared view ----------------------------------------------------------------------------------------


def _tabs(share: ShareLink) -> dict[str, str]:
    """The tabs this share has: the summary, and those its scope covers."""
    covers = covered_types(share)
    return {name: label for name, (label, needs) in TABS.items() if needs is None or needs & covers}


def _lab_tests(content: SharedContent) -> list[LabTest]:
    """The shared labs grouped by test (by name when a result has no code), each oldest first."""
    return group_by_test(content.labs)  # already in time order


def _page_context(share: ShareLink, visit: ShareVisit) -> dict:
    clinic = _clinic(share)
    return {
        "share": share,
        "visit": visit,
        "clinic": clinic,
        "when": _clinic_time(clinic.timezone),
        "watermark": watermark_text(share, utcnow(), clinic.timezone),
        "watermark_copies": SHOWN_PER_WATERMARK_LAYER,
    }


def sections_context(share: ShareLink, content: SharedContent, tab: str, args=None) -> dict:
    """What the shared sections (sharing/provider/_sections.html) need to show `content`: the provider's
    view, and the patient's preview of a share not made yet (sharing/preview.py), from the same code."""
    clinic = _clinic(share)
    lab_tests = _lab_tests(content)
    # The labs tab's panel filter and open chart (the flowsheet's links); other tabs show it unfiltered.
    sheet_args = flowsheet_args(args) if tab == "labs" and args is not None else {}
    lab_sheet = build_flowsheet(lab_tests, clinic.timezone, **sheet_args)
    series = LabOverview(content.patient, lab_tests).chart_series()
    return {
        "share": share,
        "clinic": clinic,
        "when": _clinic_time(clinic.timezone),
        "tab": tab,
        "tabs": _tabs(share),
        "content": content,
        "what": describe_scope(share),
        "lab_tests": lab_tests,
        "lab_sheet": lab_sheet,
        "lab_series": [s for s in series if lab_sheet.chart and s["canvas"] == lab_sheet.chart.index],
        "timezone": clinic.timezone,
        "flag_labels": FLAG_LABELS,
        "previewable": file_previews.previewable,
        "preview": False,  # True on the patient's preview: no link to a file, a download or another tab
    }


def _shared_view(token: str, tab: str) -> Response:
    share, visit = _admitted(token)
    tabs = _tabs(share)
    if tab != PRINT and tab not in tabs:
        abort(404)
    # Logged before the content is read: nothing is shown that the patient's access log does not list.
    services.log_view(share, "print view" if tab == PRINT else tabs[tab], **_client())
    content = shared_content(share)
    if tab in ("files", PRINT):
        _retrieve_archived(share, [attachment.current_version for attachment in content.attachments])
    return render_page(
        "sharing/provider/view.html",
        block=None if tab == PRINT else "panel",
        **{**_page_context(share, visit), **sections_context(share, content, tab, request.args)},
        token=token,
        fragment=tab != PRINT and bool(htmx and not htmx.boosted),
    )


@bp.get("/<token>/<any(summary, labs, records, files, scores):tab>")
@public
@pages_limit
def tab(token: str, tab: str):
    """One tab of the shared view: the whole page, or its panel for htmx."""
    return _shared_view(token, tab)


@bp.get("/<token>/print")
@public
@pages_limit
def print_view(token: str):
    """Every tab of the share on one page, laid out for the browser's print."""
    return _shared_view(token, PRINT)


# --- files --------------------------------------------------------------------------------------------------


def _shared_file(share: ShareLink, attachment_id: int):
    found = shared_attachment(share, attachment_id)
    if found is None:
        abort(404)
    return found


@bp.get("/<token>/files/<int:attachment_id>")
@public
@pages_limit
def file_page(token: str, attachment_id: int):
    """One shared file: its watermarked preview, page by page for a PDF; a download when allowed."""
    share, visit = _admitted(token)
    attachment, version = _shared_file(share, attachment_id)
    services.log_view(share, f"file {attachment.filename}", **_client())
    _retrieve_archived(share, [version])
    pages, more = file_previews.page_count(version)
    return render_page(
        "sharing/provider/file.html",
        **_page_context(share, visit),
        token=token,
        attachment=attachment,
        version=version,
        pages=pages,
        more_pages=more,
        max_pages=PDF_MAX_PAGES,
    )


def _bytes_response(chunks, content_type: str, disposition: str, size: int | None = None) -> Response:
    return file_response(chunks, content_type, disposition, size=size, csp=BYTES_CSP, frame_options="DENY")


@bp.get("/<token>/files/<int:attachment_id>/pages/<int:page>.png")
@public
@pages_limit
def preview(token: str, attachment_id: int, page: int):
    """A rendering of the file with the watermark drawn in: never the file's own bytes."""
    share, _visit = _admitted(token, page=False)
    _attachment, version = _shared_file(share, attachment_id)
    png = file_previews.preview_png(version, page, watermark_text(share, utcnow(), _clinic(share).timezone))
    if png is None:
        abort(404)
    services.audit_file_preview(share, **_client())
    return _bytes_response(iter([png]), "image/png", "inline", size=len(png))


def _stream(copy: IO[bytes]) -> Iterator[bytes]:
    try:
        while chunk := copy.read(files.CHUNK_BYTES):
            yield chunk
    finally:
        copy.close()


def _counted_download(
    share: ShareLink,
    visit: ShareVisit,
    token: str,
    event: str,
    detail: str,
    source: IO[bytes] | Callable[[], IO[bytes]],
    name: str,
    content_type: str,
    size: int,
) -> Response:
    """A download the share's limit counts: counted first (one guarded UPDATE), then the bytes of `source`
    (a stream, or what opens one, opened only once counted) as an attachment called `name`; the notice
    "No downloads left" when the limit is reached, and `source` closed unsent."""
    if not services.count_download(share, event, **_client(), detail=detail):
        if not callable(source):
            source.close()
        return _downloads_used_up(share, visit, token)
    stream = source() if callable(source) else source
    return _bytes_response(_stream(stream), content_type, attachment_disposition(name), size=size)


def _notice(share: ShareLink, visit: ShareVisit, token: str, title: str, text: str, status: int):
    # htmx swaps no 4xx answer: the export button gets the notice as a 200 to show in place.
    return render_page(
        "sharing/provider/notice.html",
        block="notice",
        status=200 if htmx and not htmx.boosted else status,
        **_page_context(share, visit),
        token=token,
        title=title,
        text=text,
    )


def _downloads_used_up(share: ShareLink, visit: ShareVisit, token: str) -> Response:
    return _notice(
        share,
        visit,
        token,
        "No downloads left",
        "This link's downloads are used up. You can still read everything on the shared pages.",
        403,
    )


@bp.get("/<token>/files/<int:attachment_id>/download")
@public
@pages_limit
def download(token: str, attachment_id: int):
    """The file itself, as a download, when the share allows downloads (counted against its limit)."""
    share, visit = _admitted(token, page=False)
    if not share.allow_download:
        abort(404)
    attachment, version = _shared_file(share, attachment_id)
    try:
        copy = file_previews.verified_copy(version)
    except files.FileArchived:
        _retrieve_archived(share, [version])
        return _notice(
            share,
            visit,
            token,
            "This file is being retrieved",
            "The clinic keeps this file in its archive, and it is being retrieved for you. Its page says "
            "when it will be ready; the download works then.",
            409,
        )
    except files.ChecksumMismatch:
        return _notice(
            share,
            visit,
            token,
            "This file cannot be sent",
            "The stored file no longer matches the file that was uploaded, so it is not sent. "
            "Tell the clinic.",
            409,
        )
    return _counted_download(
        share, visit, token, EVENT_DOWNLOAD, attachment.filename, copy,
        version.original_name, version.content_type, version.size,
    )  # fmt: skip


# --- exports ------------------------------------------------------------------------------------------------


def _export_job(share: ShareLink, visit: ShareVisit, job_id: str) -> Job:
    """This visit's own PDF export job of this share; anything else answers 404."""
    job = get_scoped(Job, job_id, share.tenant_id) if len(job_id) <= 36 else None
    if (
        job is None
        or job.tenant_id != share.tenant_id
        or job.kind != EXPORT_JOB
        or list(job.args or []) != [share.id, visit.id]
    ):
        abort(404)
    return job


def _downloads_left(share: ShareLink) -> bool:
    return share.max_downloads is None or share.downloads < share.max_downloads


@bp.post("/<token>/export/pdf")
@public
@starts_limit
def export_pdf(token: str):
    """Start making the watermarked PDF of the share (a job); htmx gets its progress in place."""
    share, visit = _admitted(token)
    if not share.allow_download:
        abort(404)
    if not _downloads_left(share):
        return _downloads_used_up(share, visit, token)
    job_id = enqueue(EXPORT_JOB, share.id, visit.id, tenant_id=share.tenant_id, label="Shared records PDF")
    progress_url = url_for(".export_progress", token=token, job_id=job_id)
    if not htmx or htmx.boosted:
        return redirect(progress_url, code=303)
    return _export_page(token, share, visit, job_id)


def _export_page(token: str, share: ShareLink, visit: ShareVisit, job_id: str, *, polled: bool = False):
    job = _export_job(share, visit, job_id)
    response = render_page(
        "sharing/provider/export.html",
        block="export_progress",
        **_page_context(share, visit),
        token=token,
        job=job,
    )
    if polled and job.is_done and htmx and not htmx.boosted:
        response.status_code = STOP_POLLING
    return response


@bp.get("/<token>/export/pdf/<job_id>")
@public
@pages_limit
def export_progress(token: str, job_id: str):
    """The export's progress (htmx polls it every second and stops at 286), then its download."""
    share, visit = _admitted(token)
    if not share.allow_download:
        abort(404)
    return _export_page(token, share, visit, job_id, polled=True)


@bp.get("/<token>/export/pdf/<job_id>/download")
@public
@pages_limit
def export_download(token: str, job_id: str):
    share, visit = _admitted(token, page=False)
    if not share.allow_download:
        abort(404)
    job = _export_job(share, visit, job_id)
    key = (job.result or {}).get("key") if job.status == FINISHED else None
    if not key:
        abort(404)
    storage = get_storage(current_app)
    stored = storage.head(key)
    if stored is None:
        abort(404)
    return _counted_download(
        share, visit, token, EVENT_EXPORT, "PDF", lambda: storage.open_stream(key),
        f"shared-records-{utcnow():%Y-%m-%d}.pdf", "application/pdf", stored.size,
    )  # fmt: skip


@bp.get("/<token>/export/labs.csv")
@public
@pages_limit
def export_labs(token: str):
    """The shared lab results as CSV, when the share allows downloads (counted)."""
    share, visit = _admitted(token, page=False)
    if not share.allow_download or "labs" not in covered_types(share):
        abort(404)
    data = labs_csv(shared_content(share)).encode("utf-8")
    return _counted_download(
        share, visit, token, EVENT_EXPORT, "labs CSV", io.BytesIO(data),
        f"shared-lab-results-{utcnow():%Y-%m-%d}.csv", "text/csv; charset=utf-8", len(data),
    )  # fmt: skip
