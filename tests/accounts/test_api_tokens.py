"""Personal API tokens: the page that makes, lists and revokes them, what is stored (a hash only), and token
authentication in the access layer (opt-in endpoints, the same role permissions, no CSRF, no cookie, 401 in
JSON, the failure limit, the audit)."""

from __future__ import annotations

import hashlib
import logging
import re
from datetime import UTC, timedelta

import pytest
import time_machine
from flask import jsonify
from sqlalchemy import select

from healthcrm.access import requires
from healthcrm.accounts import api_tokens
from healthcrm.accounts import services as accounts
from healthcrm.accounts.models import ApiToken
from healthcrm.audit.services import Actor, verify_chain
from healthcrm.clock import utcnow
from healthcrm.extensions import db
from healthcrm.portal.models import Notification
from healthcrm.web import redact_tokens
from tests.accounts.pages import field_error
from tests.accounts.stored import audit_events, database_contains
from tests.concurrency import parallel
from tests.factories import PASSWORD, login, make_tenant, make_user

SECRET = re.compile(r'id="new-token-secret" value="(hcrm_[A-Za-z0-9_-]{43})"')


def actor_of(user) -> Actor:
    return Actor(tenant_id=user.tenant_id, user_id=user.id, role=user.role, ip="127.0.0.1")


def make_token(user, name: str = "nightly report", days: int = 90) -> tuple[ApiToken, str]:
    return api_tokens.create_token(actor_of(user), user, name, days, PASSWORD)


def bearer(raw: str) -> dict:
    return {"Authorization": f"Bearer {raw}"}


def later(delta: timedelta):
    """Travel to now + delta (ticking), whatever the date the suite runs on."""
    return time_machine.travel(utcnow().replace(tzinfo=UTC) + delta, tick=True)


@pytest.fixture
def clinic(app):
    tenant = make_tenant()
    return tenant, make_user(tenant, "admin"), make_user(tenant, "doctor")


# --- the page ------------------------------------------------------------------------------------------


def test_the_page_makes_a_token_shows_it_once_and_stores_only_its_hash(app, client, clinic):
    _, admin, _ = clinic
    login(client, admin.email)
    page = client.get("/account/tokens").get_data(as_text=True)
    assert "You have no tokens." in page
    assert re.search(r'<option selected value="90">90 days</option>', page)  # the default

    answer = client.post(
        "/account/tokens", data={"name": "storage report", "days": "90", "password": PASSWORD}
    )
    assert answer.status_code == 200
    created = answer.get_data(as_text=True)
    secret = SECRET.search(created).group(1)
    assert "it is not shown again" in created
    with client.session_transaction() as cookie_session:  # never flashed: the flash lives in a cookie
        assert secret not in str(dict(cookie_session))

    token = db.session.scalar(select(ApiToken))
    assert token.token_hash == hashlib.sha256(secret.encode()).hexdigest()
    assert not database_contains(secret)
    assert not database_contains(secret[5:])
    assert token.expires_at - token.created_at == timedelta(days=90)

    listing = client.get("/account/tokens").get_data(as_text=True)
    assert secret not in listing
    assert "storage report" in listing and "Never" in listing and "Active" in listing
    [event] = audit_events("api_token.created")
    assert (event.actor_user_id, event.resource_type, event.resource_id) == (
        admin.id,
        "api_token",
        str(token.id),
    )
    # The owner's bell says a token was made (a hijacked session's token is seen).
    notice = db.session.scalar(select(Notification).where(Notification.user_id == admin.id))
    assert notice.kind == "api_token" and "storage report" in notice.text


def test_a_wrong_password_makes_no_token_and_is_audited(client, clinic):
    _, admin, _ = clinic
    login(client, admin.email)
    answer = client.post("/account/tokens", data={"name": "x", "days": "90", "password": "not my password"})
    assert answer.status_code == 422
    assert field_error(answer.get_data(as_text=True), "password") == "That is not your password."
    assert db.session.scalar(select(ApiToken)) is None
    assert [e.outcome for e in audit_events("api_token.create_refused")] == ["failure"]


@pytest.mark.parametrize(
    ("name", "days", "field"),
    [("", "90", "name"), ("n" * 81, "90", "name"), ("ok", "400", "days"), ("ok", "0", "days")],
)
def test_bad_input_changes_nothing(client, clinic, name, days, field):
    _, admin, _ = clinic
    login(client, admin.email)
    answer = client.post("/account/tokens", data={"name": name, "days": days, "password": PASSWORD})
    assert answer.status_code == 422
    page = answer.get_data(as_text=True)
    if field == "days":  # a select, not an input
        assert f'<p class="error" id="{field}-error">' in page
    else:
        assert field_error(page, field)
    assert db.session.scalar(select(ApiToken)) is None


def test_the_expiry_is_at_most_a_year(app, clinic):
    _, admin, _ = clinic
    token, _ = make_token(admin, days=365)
    assert token.expires_at - token.created_at == timedelta(days=365)
    for days in (366, 0, -1):
        with pytest.raises(api_tokens.TokenError) as refused:
            make_token(admin, days=days)
        assert refused.value.field == "days"


def test_a_person_holds_at_most_ten_live_tokens(app, clinic):
    _, admin, _ = clinic
    for n in range(api_tokens.LIVE_TOKENS_PER_USER):
        make_token(admin, f"script {n}")
    with pytest.raises(api_tokens.TokenError, match="Revoke one"):
        make_token(admin, "one too many")
    first = db.session.scalar(select(ApiToken).order_by(ApiToken.id))
    api_tokens.revoke_token(actor_of(admin), admin, first.id)
    make_token(admin, "now there is room")


def test_the_limit_holds_when_forms_arrive_together(app, clinic):
    _, admin, _ = clinic
    for n in range(api_tokens.LIVE_TOKENS_PER_USER - 1):
        make_token(admin, f"script {n}")
    admin_id = admin.id

    def create(index: int):
        user = db.session.get(api_tokens.User, admin_id, execution_options={"all_tenants": True})
        return make_token(user, f"racer {index}")

    outcomes = parallel(5, app, create)
    made = [o for o in outcomes if isinstance(o, tuple)]
    assert len(made) == 1, outcomes
    assert all(isinstance(o, api_tokens.TokenError) for o in outcomes if not isinstance(o, tuple))
    db.session.expire_all()
    assert api_tokens._live_count(admin, utcnow()) == api_tokens.LIVE_TOKENS_PER_USER


def test_revoking_stops_the_token_at_once(client, clinic):
    _, admin, _ = clinic
    token, raw = make_token(admin)
    assert client.get("/api/me", headers=bearer(raw)).status_code == 200
    login(client, admin.email)
    answer = client.post(f"/account/tokens/{token.id}/revoke", data={})
    assert answer.status_code == 303
    refused = client.get("/api/me", headers=bearer(raw))
    assert refused.status_code == 401 and refused.is_json
    assert 'error="invalid_token"' in refused.headers["WWW-Authenticate"]
    assert "Revoked" in client.get("/account/tokens").get_data(as_text=True)
    assert len(audit_events("api_token.revoked")) == 1
    [refusal] = audit_events("api_token.refused")
    assert (refusal.actor_user_id, refusal.outcome, refusal.changed_fields) == (
        admin.id,
        "failure",
        '["revoked"]',
    )


def test_only_ones_own_tokens_can_be_revoked_in_the_clinic_and_across(client, clinic):
    tenant, admin, doctor = clinic
    other_clinic_admin = make_user(make_tenant(), "admin")
    make_token(admin)
    colleagues, _ = make_token(doctor)
    elsewhere, elsewhere_raw = make_token(other_clinic_admin)
    login(client, admin.email)
    for token in (colleagues, elsewhere):
        assert client.post(f"/account/tokens/{token.id}/revoke", data={}).status_code == 404
    page = client.get("/account/tokens").get_data(as_text=True)
    assert page.count('<td data-label="Name">') == 1  # only the admin's own
    db.session.expire_all()
    assert db.session.get(ApiToken, colleagues.id, execution_options={"all_tenants": True}).revoked_at is None
    # Each token is its own clinic's person.
    me = client.get("/api/me", headers=bearer(elsewhere_raw)).get_json()
    assert me["clinic"]["id"] == other_clinic_admin.tenant_id != tenant.id
    assert me["user"]["id"] == other_clinic_admin.id


def test_patients_have_no_tokens(client, app):
    from tests.factories import make_patient, make_portal_user

    patient = make_portal_user(make_patient(make_tenant()))
    login(client, patient.email)
    assert client.get("/account/tokens").status_code == 403
    with pytest.raises(api_tokens.permissions.NotAllowed):
        api_tokens.create_token(actor_of(patient), patient, "x", 90, PASSWORD)


# --- authentication ------------------------------------------------------------------------------------


def test_a_token_is_its_person_for_that_request_only(app, clinic):
    tenant, admin, _ = clinic
    token, raw = make_token(admin)
    client = app.test_client()
    answer = client.get("/api/me", headers=bearer(raw))
    assert answer.status_code == 200
    assert answer.get_json() | {"request_id": None} == {
        "user": {"id": admin.id, "name": admin.full_name, "email": admin.email},
        "role": "admin",
        "clinic": {"id": tenant.id, "name": tenant.name},
        "token": {"id": token.id, "name": "nightly report", "expires_at": token.expires_at.isoformat() + "Z"},
        "authenticated_by": "token",
        "request_id": None,
    }
    # No cookie of any kind: not a session, not the flash/CSRF one.
    assert "Set-Cookie" not in answer.headers
    assert client.get_cookie("hc_session") is None and client.get_cookie("hc_flash") is None
    # The next request without the token is nobody.
    assert client.get("/api/me").status_code == 401
    assert client.get("/patients").status_code == 302
    [used] = audit_events("api_token.used")
    assert (used.tenant_id, used.actor_user_id, used.actor_role, used.resource_id) == (
        tenant.id,
        admin.id,
        "admin",
        str(token.id),
    )
    db.session.expire_all()
    assert db.session.get(ApiToken, token.id).last_used_at is not None


def test_a_request_with_a_token_is_the_tokens_person_not_the_cookies(client, clinic):
    _, admin, doctor = clinic
    _, doctors = make_token(doctor)
    login(client, admin.email)
    assert client.get("/api/me").get_json()["authenticated_by"] == "session"
    me = client.get("/api/me", headers=bearer(doctors)).get_json()
    assert (me["user"]["id"], me["role"], me["authenticated_by"]) == (doctor.id, "doctor", "token")
    # A bad token with a good cookie is refused, not answered as the cookie's person.
    assert client.get("/api/me", headers=bearer("hcrm_" + "x" * 43)).status_code == 401


def test_a_token_sent_where_tokens_are_not_taken_is_refused_not_ignored(client, clinic):
    _, admin, _ = clinic
    _, raw = make_token(admin)
    for url in ("/patients", "/account/tokens", "/audit", "/healthz", "/notifications"):
        answer = client.get(url, headers=bearer(raw))
        assert answer.status_code == 401, url
        assert answer.is_json and "does not accept API tokens" in answer.get_json()["message"]
        assert 'error="invalid_request"' in answer.headers["WWW-Authenticate"]
    # Not with a signed-in browser's cookie either: the header is never silently dropped.
    login(client, admin.email)
    assert client.get("/patients", headers=bearer(raw)).status_code == 401
    assert client.get("/patients").status_code == 200
    # Another scheme (a proxy's Basic sign-in in front of the app) is not a token and changes nothing.
    assert client.get("/patients", headers={"Authorization": "Basic dXNlcjpwdw=="}).status_code == 200


def test_anonymous_api_requests_get_401_json_not_a_sign_in_page(client):
    answer = client.get("/api/me")
    assert answer.status_code == 401 and answer.is_json
    assert answer.headers["WWW-Authenticate"] == 'Bearer realm="HealthCRM"'
    assert "Location" not in answer.headers


def test_an_expired_token_is_refused(app, clinic):
    _, admin, _ = clinic
    _, raw = make_token(admin, days=7)
    client = app.test_client()
    with later(timedelta(days=6, hours=23)):
        assert client.get("/api/me", headers=bearer(raw)).status_code == 200
    with later(timedelta(days=7, minutes=1)):
        assert client.get("/api/me", headers=bearer(raw)).status_code == 401
        assert "Expired" in _listing_of(app, admin)
    assert [e.changed_fields for e in audit_events("api_token.refused")] == ['["expired"]']


def _listing_of(app, user) -> str:
    browser = app.test_client()
    login(browser, user.email)
    return browser.get("/account/tokens").get_data(as_text=True)


def test_a_deactivated_persons_tokens_are_refused_and_stay_revoked(app, client, clinic):
    _, admin, doctor = clinic
    token, raw = make_token(doctor)
    accounts.set_active(actor_of(admin), doctor.id, False)
    assert client.get("/api/me", headers=bearer(raw)).status_code == 401
    accounts.set_active(actor_of(admin), doctor.id, True)
    assert client.get("/api/me", headers=bearer(raw)).status_code == 401  # reactivation does not revive it
    db.session.expire_all()
    assert db.session.get(ApiToken, token.id).revoked_reason == "deactivated"


def test_an_inactive_account_is_refused_whatever_its_token_row_says(client, clinic):
    _, _, doctor = clinic
    _, raw = make_token(doctor)
    doctor.active = False
    db.session.commit()
    assert client.get("/api/me", headers=bearer(raw)).status_code == 401
    assert [e.changed_fields for e in audit_events("api_token.refused")] == ['["inactive_user"]']


def test_a_new_role_revokes_the_tokens(client, clinic):
    _, admin, doctor = clinic
    token, raw = make_token(doctor)
    accounts.change_role(actor_of(admin), doctor.id, "admin")
    assert client.get("/api/me", headers=bearer(raw)).status_code == 401
    db.session.expire_all()
    assert db.session.get(ApiToken, token.id).revoked_reason == "role_changed"


def test_a_clinic_that_requires_two_step_sign_in_refuses_tokens_of_staff_without_it(client, clinic):
    tenant, admin, _ = clinic
    _, raw = make_token(admin)
    tenant.mfa_required_for_staff = True
    db.session.commit()
    assert client.get("/api/me", headers=bearer(raw)).status_code == 401
    assert [e.changed_fields for e in audit_events("api_token.refused")] == ['["mfa_not_set_up"]']


def _add_api_routes(app) -> None:
    def clinic_users():
        return jsonify(users="the list")

    def clinic_change():
        return jsonify(changed=True)

    app.add_url_rule("/api/test/users", "test_users", requires("users.manage", tokens=True)(clinic_users))
    app.add_url_rule(
        "/api/test/change",
        "test_change",
        requires("account.api_tokens", tokens=True)(clinic_change),
        methods=["POST"],
    )


@pytest.mark.own_app  # it adds routes
def test_a_token_has_its_persons_role_permissions(app, clinic):
    _, admin, doctor = clinic
    _add_api_routes(app)
    _, admins = make_token(admin)
    _, doctors = make_token(doctor)
    client = app.test_client()
    assert client.get("/api/test/users", headers=bearer(admins)).get_json() == {"users": "the list"}
    refused = client.get("/api/test/users", headers=bearer(doctors))
    assert refused.status_code == 403 and refused.is_json
    assert "the list" not in refused.get_data(as_text=True)
    [denied] = audit_events("access.denied")
    assert (denied.actor_user_id, denied.actor_role, denied.resource_id) == (
        doctor.id,
        "doctor",
        "test_users",
    )


@pytest.mark.own_app  # it adds routes
def test_csrf_does_not_apply_to_token_requests_but_does_to_cookie_sessions(app, clinic):
    _, admin, _ = clinic
    _add_api_routes(app)
    _, raw = make_token(admin)
    script = app.test_client()
    assert script.post("/api/test/change", data={}, csrf=False, headers=bearer(raw)).get_json() == {
        "changed": True
    }
    browser = app.test_client()
    login(browser, admin.email)
    without = browser.post("/api/test/change", data={}, csrf=False)
    assert without.status_code == 400 and without.is_json  # the CSRF check, answered in JSON
    assert browser.post("/api/test/change", data={}).get_json() == {"changed": True}
    # A page form with no token is still checked too.
    assert browser.post(f"/account/tokens/{999}/revoke", data={}, csrf=False).status_code == 400


def test_refused_tokens_are_limited_per_client(app, clinic):
    _, admin, _ = clinic
    _, good = make_token(admin)
    client = app.test_client()
    guesses = ["hcrm_" + "a" * 43, "not-even-a-token", "hcrm_short"] * 4
    answers = [client.get("/api/me", headers=bearer(guess)).status_code for guess in guesses[:10]]
    assert answers == [401] * 10
    blocked = client.get("/api/me", headers=bearer(good))
    assert blocked.status_code == 429 and blocked.is_json and blocked.headers["Retry-After"]
    # Another client is not affected, and the refusals (unknown tokens: the system chain) are audited.
    other = app.test_client()
    other.environ_base["REMOTE_ADDR"] = "10.0.0.9"
    assert other.get("/api/me", headers=bearer(good)).status_code == 200
    refusals = audit_events("api_token.refused")
    assert len(refusals) == 10 and {e.tenant_id for e in refusals} == {None}
    assert {e.changed_fields for e in refusals} == {'["unknown"]', '["malformed"]'}
    assert verify_chain().intact
    if app.config["RATELIMIT_STORAGE_URI"].startswith("memory"):  # Redis expires keys on its own clock
        with later(timedelta(minutes=16)):
            assert client.get("/api/me", headers=bearer(good)).status_code == 200


def test_used_is_audited_at_most_hourly_and_from_each_new_address(app, clinic):
    _, admin, _ = clinic
    token, raw = make_token(admin)
    client = app.test_client()
    for _ in range(5):
        assert client.get("/api/me", headers=bearer(raw)).status_code == 200
    assert len(audit_events("api_token.used")) == 1
    with later(timedelta(minutes=30)):
        client.get("/api/me", headers=bearer(raw))
        assert len(audit_events("api_token.used")) == 1
        db.session.expire_all()
        moved = db.session.get(ApiToken, token.id).last_used_at  # last used moves on (once a minute)
        assert utcnow() - moved < timedelta(minutes=1)
        elsewhere = app.test_client()
        elsewhere.environ_base["REMOTE_ADDR"] = "10.1.2.3"
        elsewhere.get("/api/me", headers=bearer(raw))
        used = audit_events("api_token.used")
        assert [e.ip for e in used] == ["127.0.0.1", "10.1.2.3"]
    with later(timedelta(minutes=30 + 61)):
        elsewhere.get("/api/me", headers=bearer(raw))
        assert len(audit_events("api_token.used")) == 3


def test_requests_arriving_together_write_one_used_event(app, clinic):
    _, admin, _ = clinic
    token, raw = make_token(admin)
    origin = Actor(tenant_id=None, ip="192.0.2.7", user_agent="script")
    outcomes = parallel(8, app, lambda _: api_tokens.authenticate(raw, origin))
    assert all(isinstance(o, ApiToken) and o.id == token.id for o in outcomes), outcomes
    assert len(audit_events("api_token.used")) == 1
    assert verify_chain().intact


def test_the_secret_never_reaches_the_log(app, client, clinic, caplog):
    _, admin, _ = clinic
    caplog.set_level(logging.DEBUG)
    login(client, admin.email)
    page = client.post("/account/tokens", data={"name": "log check", "days": "30", "password": PASSWORD})
    secret = SECRET.search(page.get_data(as_text=True)).group(1)
    client.get("/api/me", headers=bearer(secret))
    client.get("/patients", headers=bearer(secret))
    client.get(f"/api/me?token={secret}")
    assert secret not in caplog.text
    # And a log line that quotes one (a URL someone pasted it into) is redacted.
    assert redact_tokens(f"GET /api/me?token={secret} 401") == "GET /api/me?token=hcrm_[redacted] 401"
