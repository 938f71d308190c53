"""Job functions of the sharing area: the emails, and the sweep of expired links."""

from __future__ import annotations

from ..accounts.models import Tenant
from ..extensions import db
from ..jobs.queue import task
from ..mail.services import compose, deliver
from ..tenancy import get_scoped
from . import services
from .content import covered_types
from .models import RECORD_TYPES, SCOPE_ALL, SCOPE_RECORDS, ShareLink


def describe_scope(share: ShareLink) -> str:
    """What a share covers, in words (for emails and pages)."""
    if share.scope == SCOPE_ALL:
        return "the complete health record"
    if share.scope == SCOPE_RECORDS:
        count = len(share.scope_record_ids or [])
        return f"{count} chosen record{'s' if count != 1 else ''}"
    return ", ".join(RECORD_TYPES[kind].lower() for kind in sorted(covered_types(share)))


@task("sharing.email_share")
def email_share(share_id: int, *, progress) -> dict:
    """Mail the recipient their link: a fresh token made here, so it exists only in this email."""
    made = services.new_email_token(share_id, progress.tenant_id)
    if made is None:
        return {"sent": False}
    share, token = made
    patient = share.patient
    deliver(
        compose(
            share.recipient_email,
            "share_link",
            tenant_id=share.tenant_id,
            share=share,
            patient=patient,
            url=services.share_url(token),
            what=describe_scope(share),
            clinic=db.session.get(Tenant, share.tenant_id).name,
            ends=services.share_time(share, share.expires_at),
        )
    )
    return {"sent": True}


@task("sharing.email_code")
def email_code(share_id: int, ip: str, user_agent: str, *, progress) -> dict:
    """A one-time code, made here (so it exists only in this email), to the address the patient entered."""
    share = get_scoped(ShareLink, share_id, progress.tenant_id)
    if share is None:
        return {"sent": False}
    code = services.issue_code(share, ip=ip or None, user_agent=user_agent or None)
    if code is None:
        return {"sent": False, "reason": "too many codes in the last hour"}
    deliver(
        compose(
            share.recipient_email,
            "share_code",
            tenant_id=share.tenant_id,
            share=share,
            code=code,
            minutes=int(services.CODE_LIFETIME.total_seconds() // 60),
        )
    )
    return {"sent": True}


@task("sharing.email_patient")
def email_patient(share_id: int, kind: str, *, progress) -> dict:
    """Tell the patient: their link was opened for the first time, or paused."""
    share = get_scoped(ShareLink, share_id, progress.tenant_id)
    user = share.patient.portal_user if share else None
    if user is None or not user.email:
        return {"sent": False}
    deliver(
        compose(
            user.email,
            "share_notice",
            tenant_id=share.tenant_id,
            share=share,
            kind=kind,
            user=user,
            paused_until=services.share_time(share, share.paused_until),
        )
    )
    return {"sent": True}


@task("sharing.sweep")
def sweep(*, progress) -> dict:
    """Mark expired links and delete their visits, codes and shown/emailed tokens (nothing opens them)."""
    return {"expired": services.sweep_expired()}
