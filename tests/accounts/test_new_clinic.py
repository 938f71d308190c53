"""New clinics start safe: `flask tenant create` makes a clinic that requires two-step sign-in for staff
and invites its first administrator; inviting a colleague starts from the least privileged role."""

from __future__ import annotations

import re

from sqlalchemy import func, select

from healthcrm.accounts.models import Tenant, User
from healthcrm.audit.models import AuditEvent
from healthcrm.extensions import db
from healthcrm.mail.services import outbox_entries
from tests.factories import login, make_tenant, make_user


def test_tenant_create_requires_two_step_sign_in_and_invites_the_first_admin(app, drain_jobs):
    result = app.test_cli_runner().invoke(
        args=["tenant", "create", "Harbor Liver Center", "--admin-email", "Ana@Harbor.example.com",
              "--admin-name", "Ana Silva", "--timezone", "America/New_York"]
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "two-step sign-in" in result.output
    tenant = db.session.scalar(select(Tenant).where(Tenant.slug == "harbor-liver-center"))
    assert tenant.mfa_required_for_staff is True
    assert tenant.timezone == "America/New_York"
    [admin] = db.session.scalars(select(User).where(User.tenant_id == tenant.id))
    assert (admin.email, admin.role, admin.has_password) == ("ana@harbor.example.com", "admin", False)
    actions = db.session.scalars(select(AuditEvent.action).where(AuditEvent.tenant_id == tenant.id))
    assert set(actions) == {"clinic.created", "user.invited"}
    drain_jobs()
    [invitation] = outbox_entries(tenant.id)
    assert invitation.to == "ana@harbor.example.com"


def test_tenant_create_refuses_a_taken_slug_or_email_and_changes_nothing(app):
    make_tenant(slug="harbor")
    existing = make_user(make_tenant(), "admin", email="taken@example.com")
    runner = app.test_cli_runner()
    clinics = db.session.scalar(select(func.count()).select_from(Tenant))
    taken_slug = runner.invoke(
        args=["tenant", "create", "Harbor", "--admin-email", "new@example.com", "--admin-name", "N"]
    )
    assert taken_slug.exit_code != 0 and "already exists" in taken_slug.output
    taken_email = runner.invoke(
        args=["tenant", "create", "Bay", "--admin-email", existing.email, "--admin-name", "N"]
    )
    assert taken_email.exit_code != 0 and "already has an account" in taken_email.output
    bad_zone = runner.invoke(
        args=[
            "tenant",
            "create",
            "Cove",
            "--admin-email",
            "c@example.com",
            "--admin-name",
            "N",
            "--timezone",
            "Mars/Base",
        ]
    )
    assert bad_zone.exit_code != 0 and "Unknown time zone" in bad_zone.output
    assert db.session.scalar(select(func.count()).select_from(Tenant)) == clinics


def test_invite_a_colleague_starts_from_the_least_privileged_role(app, client):
    tenant = make_tenant()
    login(client, make_user(tenant, "admin").email)
    html = client.get("/users").get_data(as_text=True)
    select_html = re.search(r'<select[^>]*name="role".*?</select>', html, re.S).group(0)
    selected = re.findall(
        r'<option[^>]*selected[^>]*value="([^"]+)"|<option[^>]*value="([^"]+)"[^>]*selected', select_html
    )
    assert [a or b for a, b in selected] == ["front_desk"]
