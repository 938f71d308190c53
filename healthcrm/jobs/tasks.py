"""Job functions. Thin: load by id, call the owning area's service, report progress."""

from __future__ import annotations

from ..accounts import services as accounts
from ..mail.services import compose, deliver
from .queue import task


@task("accounts.email_password_reset")
def email_password_reset(user_id: int, *, progress) -> dict:
    link = accounts.prepare_password_reset_link(user_id)
    if link is None:
        return {"sent": False}
    progress(50)
    minutes = int(accounts.TOKEN_LIFETIMES[accounts.RESET].total_seconds()) // 60
    deliver(
        compose(
            link.user.email,
            "Reset your HealthCRM password",
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
    link = accounts.prepare_invitation_link(user_id)
    if link is None:
        return {"sent": False}
    progress(50)
    template = "patient_invitation" if link.user.is_patient else "staff_invitation"
    deliver(
        compose(
            link.user.email,
            f"Your {link.user.tenant.name} account",
            template,
            tenant_id=link.user.tenant_id,
            user=link.user,
            url=link.url,
            days=accounts.TOKEN_LIFETIMES[accounts.INVITE].days,
        )
    )
    return {"sent": True}
