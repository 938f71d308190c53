"""Job functions. Thin: load by id, call the owning area's service, report progress."""

from __future__ import annotations

from ..accounts import services as accounts
from ..audit.services import Actor
from ..mail.services import compose, deliver
from .queue import task


@task("accounts.email_password_reset")
def email_password_reset(email: str, ip: str, user_agent: str, request_id: str, *, progress) -> dict:
    """The reset email for whatever address was typed on /forgot: only here is it known whether the
    address has an account (the request answered the same either way)."""
    requester = Actor(
        tenant_id=None, ip=ip or None, user_agent=user_agent or None, request_id=request_id or None
    )
    link = accounts.prepare_requested_reset(email, requester)
    if link is None:
        return {"sent": False}
    progress(50)
    minutes = int(accounts.TOKEN_LIFETIMES[accounts.RESET].total_seconds()) // 60
    deliver(
        compose(
            link.user.email,
            "password_reset",
            tenant_id=link.user.tenant_id,
            user=link.user,
            url=link.url,
            minutes=minutes,
        )
    )
    return {"sent": True}


@task("accounts.email_invitation")
def email_invitation(user_id: int, *, progress) -> dict:
    link = accounts.prepare_invitation_link(user_id, progress.tenant_id)
    if link is None:
        return {"sent": False}
    progress(50)
    template = "patient_invitation" if link.user.is_patient else "staff_invitation"
    deliver(
        compose(
            link.user.email,
            template,
            tenant_id=link.user.tenant_id,
            user=link.user,
            url=link.url,
            days=accounts.TOKEN_LIFETIMES[accounts.INVITE].days,
        )
    )
    return {"sent": True}


@task("accounts.email_registration")
def email_registration(code_id: int, email: str, *, progress) -> dict:
    """The "choose your password" link for a patient who gave a right registration code."""
    from ..accounts import registration  # noqa: PLC0415

    prepared = registration.prepare_registration_link(code_id, email, progress.tenant_id)
    if prepared is None:
        return {"sent": False}
    row, url = prepared
    progress(50)
    deliver(
        compose(
            row.verify_email,
            "registration",
            tenant_id=row.tenant_id,
            patient=row.patient,
            url=url,
            hours=registration.VERIFY_HOURS,
        )
    )
    return {"sent": True}
