"""Headers, CSRF, error pages and cookies that every response must get right."""

from __future__ import annotations

import logging
import os
import re
import socket
import subprocess
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from werkzeug.serving import make_server

from healthcrm import create_app
from healthcrm.audit.services import verify_chain
from healthcrm.config import ConfigError
from healthcrm.extensions import db, limiter
from tests.accounts.stored import audit_events
from tests.factories import PASSWORD, login, make_patient, make_tenant, make_user

ROOT = Path(__file__).resolve().parent.parent


def test_every_page_has_strict_security_headers(app, client):
    tenant = make_tenant()
    login(client, make_user(tenant, "doctor").email)
    patient = make_patient(tenant)
    for url in ("/forgot", "/patients", f"/patients/{patient.id}"):
        response = client.get(url)
        csp = response.headers["Content-Security-Policy"]
        assert "frame-ancestors 'none'" in csp
        assert "'unsafe-inline'" not in csp and "'unsafe-eval'" not in csp
        nonce = re.search(r"'nonce-([^']+)'", csp).group(1)
        page = response.get_data(as_text=True)
        for tag in re.findall(r"<script[^>]*>", page):
            assert f'nonce="{nonce}"' in tag and "src=" in tag
        assert response.headers["Strict-Transport-Security"].startswith("max-age=")
        assert response.headers["X-Content-Type-Options"] == "nosniff"
        assert response.headers["Referrer-Policy"] == "no-referrer"
        assert response.headers["Cache-Control"] == "no-store"
        assert "historyCacheSize&#34;:0" in page or '"historyCacheSize":0' in page


def test_no_inline_scripts_or_styles_in_pages(app, client):
    tenant = make_tenant()
    login(client, make_user(tenant, "admin").email)
    for url in ("/patients", "/users", "/account/security", "/audit", "/outbox", "/jobs"):
        page = client.get(url).get_data(as_text=True)
        assert re.search(r"<script(?![^>]*\bsrc=)[^>]*>", page) is None, url
        assert " style=" not in page, url
        assert "hx-on" not in page, url


def test_post_without_csrf_token_is_refused_and_changes_nothing(app, client):
    tenant = make_tenant()
    admin = make_user(tenant, "admin")
    login(client, admin.email)
    response = client.post("/clinic/security", data={"mfa_required_for_staff": "y"}, csrf=False)
    assert response.status_code == 400
    assert "form has expired" in response.get_data(as_text=True)
    assert tenant.mfa_required_for_staff is False


def test_htmx_requests_send_the_token_in_a_header(app, client):
    tenant = make_tenant()
    login(client, make_user(tenant, "admin").email)
    token = client.csrf_token()
    response = client.post(
        "/clinic/security",
        data={"mfa_required_for_staff": "y"},
        csrf=False,
        headers={"X-CSRFToken": token, "HX-Request": "true"},
    )
    assert response.status_code == 303


@pytest.mark.own_app  # it adds a route
def test_error_pages_are_generic(app, client):
    @app.get("/boom")
    def boom():
        raise RuntimeError("secret stack detail")

    boom.access_policy = __import__("healthcrm.access", fromlist=["Policy"]).Policy(public=True)
    response = client.get("/boom")
    assert response.status_code == 500
    body = response.get_data(as_text=True)
    assert "secret stack detail" not in body and "Traceback" not in body
    assert "Something went wrong" in body
    assert client.get("/no-such-page").status_code == 404


def test_too_large_request_is_413(app, client):
    app.config["MAX_CONTENT_LENGTH"] = 1000
    response = client.post("/login", data={"email": "a" * 5000, "password": "x"}, csrf=False)
    assert response.status_code == 413


def test_production_refuses_to_start_without_secrets(monkeypatch, tmp_path):
    monkeypatch.delenv("SECRET_KEY", raising=False)
    try:
        create_app({"APP_ENV": "production", "INSTANCE_PATH": str(tmp_path)})
    except ConfigError as error:
        assert "SECRET_KEY" in str(error)
    else:
        raise AssertionError("production started without SECRET_KEY")


@pytest.mark.parametrize(
    "mail",
    [
        pytest.param({}, id="no SMTP_HOST: the outbox"),
        pytest.param({"MAIL_BACKEND": "outbox", "SMTP_HOST": "smtp.clinic.example"}, id="outbox chosen"),
        pytest.param({"MAIL_BACKEND": "smtp"}, id="smtp without a host"),
    ],
)
def test_production_refuses_to_start_without_a_real_mail_backend(monkeypatch, tmp_path, mail):
    monkeypatch.setenv("SECRET_KEY", "k" * 40)
    monkeypatch.setenv("DATABASE_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")
    monkeypatch.setenv("REDIS_URL", "redis://127.0.0.1:6379/0")
    for name in ("MAIL_BACKEND", "SMTP_HOST"):
        monkeypatch.delenv(name, raising=False)
    for name, value in mail.items():
        monkeypatch.setenv(name, value)
    with pytest.raises(ConfigError, match="SMTP_HOST"):
        create_app({"APP_ENV": "production", "INSTANCE_PATH": str(tmp_path)})


def test_production_cookies_are_secure(monkeypatch, tmp_path):
    monkeypatch.setenv("SECRET_KEY", "k" * 40)
    monkeypatch.setenv("DATABASE_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")
    monkeypatch.setenv("REDIS_URL", "redis://127.0.0.1:6379/0")
    monkeypatch.setenv("SMTP_HOST", "smtp.clinic.example")
    monkeypatch.delenv("MAIL_BACKEND", raising=False)
    app = create_app({"APP_ENV": "production", "INSTANCE_PATH": str(tmp_path)})
    assert app.config["MAIL_BACKEND"] == "smtp"
    assert app.config["SESSION_COOKIE_SECURE"] is True
    assert app.config["SESSION_COOKIE_HTTPONLY"] is True
    assert app.config["SESSION_COOKIE_SAMESITE"] == "Lax"


def test_embedded_secret_key_is_generated_once_and_kept(monkeypatch, tmp_path):
    monkeypatch.delenv("SECRET_KEY", raising=False)
    first = create_app({"APP_ENV": "development", "INSTANCE_PATH": str(tmp_path)}).config["SECRET_KEY"]
    second = create_app({"APP_ENV": "development", "INSTANCE_PATH": str(tmp_path)}).config["SECRET_KEY"]
    assert first == second and len(first) >= 32
    assert (tmp_path / "secret_key").stat().st_mode & 0o077 == 0


# --- request ids ---------------------------------------------------------------------------------------


def test_a_clients_own_request_id_is_not_believed(app, client):
    doctor = make_user(make_tenant(), "doctor")
    login(client, doctor.email)

    response = client.get("/patients", headers={"X-Request-ID": "chosenbytheclient"})

    assert response.headers["X-Request-ID"] != "chosenbytheclient"
    [event] = audit_events("patient.list")
    assert event.request_id == response.headers["X-Request-ID"]


def test_a_trusted_proxys_request_id_is_kept(app, client):
    app.config["TRUST_PROXY_COUNT"] = 1
    response = client.get("/healthz", headers={"X-Request-ID": "fromourproxy42"})
    assert response.headers["X-Request-ID"] == "fromourproxy42"


# --- cross-site requests -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "headers",
    [
        pytest.param({"Origin": "https://evil.example"}, id="another Origin"),
        pytest.param({"Origin": "http://localhost.evil.example"}, id="a look-alike Origin"),
        pytest.param({"Sec-Fetch-Site": "cross-site"}, id="Sec-Fetch-Site cross-site"),
        pytest.param({"Origin": "null", "Sec-Fetch-Site": "cross-site"}, id="null Origin from another site"),
    ],
)
def test_a_cross_site_post_with_a_valid_token_is_refused_and_changes_nothing(app, client, headers):
    tenant = make_tenant()
    login(client, make_user(tenant, "admin").email)
    token = client.csrf_token()

    response = client.post(
        "/clinic/security", data={"mfa_required_for_staff": "y", "csrf_token": token}, headers=headers
    )

    assert response.status_code == 403
    assert "came from another website" in response.get_data(as_text=True)
    db.session.refresh(tenant)
    assert tenant.mfa_required_for_staff is False


@pytest.mark.parametrize(
    "headers",
    [
        pytest.param({"Origin": "http://localhost", "Sec-Fetch-Site": "same-origin"}, id="our own origin"),
        pytest.param({"Origin": "http://127.0.0.1:5000"}, id="PUBLIC_URL's origin"),
        # What Chromium sends for our own forms under Referrer-Policy: no-referrer.
        pytest.param({"Origin": "null", "Sec-Fetch-Site": "same-origin"}, id="null Origin, same origin"),
        pytest.param({}, id="no headers: a non-browser client"),
    ],
)
def test_same_origin_posts_pass(app, client, headers):
    app.config["PUBLIC_URL"] = "http://127.0.0.1:5000"
    tenant = make_tenant()
    login(client, make_user(tenant, "admin").email)
    token = client.csrf_token()

    response = client.post(
        "/clinic/security", data={"mfa_required_for_staff": "y", "csrf_token": token}, headers=headers
    )

    assert response.status_code == 303
    db.session.refresh(tenant)
    assert tenant.mfa_required_for_staff is True


def test_the_share_pages_refuse_cross_site_posts_too(app, client):
    response = client.post(
        "/s/sometoken/passcode",
        data={"passcode": "whatever"},
        headers={"Sec-Fetch-Site": "cross-site"},
    )
    assert response.status_code == 403


# --- the limit store is down -----------------------------------------------------------------------------


@pytest.fixture
def dead_limit_store(app, outbox_dir):
    """A second app on the same database whose rate-limit store is a closed port (Redis stopped)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        closed_port = probe.getsockname()[1]
    down = create_app(
        {
            "APP_ENV": "testing",
            "INSTANCE_PATH": app.instance_path,
            "SECRET_KEY": app.config["SECRET_KEY"],
            "SQLALCHEMY_DATABASE_URI": app.config["SQLALCHEMY_DATABASE_URI"],
            "MAIL_BACKEND": "outbox",
            "MAIL_OUTBOX_DIR": str(outbox_dir),
            "RATELIMIT_STORAGE_URI": f"redis://127.0.0.1:{closed_port}/0",
            "RATELIMIT_STORAGE_OPTIONS": {"wrap_exceptions": True, "socket_connect_timeout": 1},
        }
    )
    down.test_client_class = app.test_client_class
    yield down
    limiter.init_app(app)  # the shared limiter back on the test app's store


def test_sign_in_answers_503_never_500_nor_unlimited_when_the_limit_store_is_down(dead_limit_store):
    doctor = make_user(make_tenant(), "doctor")
    client = dead_limit_store.test_client()

    response = client.post("/login", data={"email": doctor.email, "password": "a wrong password here"})

    assert response.status_code == 503
    assert "Temporarily unavailable" in response.get_data(as_text=True)
    assert response.headers["Retry-After"]
    # Not "unlimited": the password was never checked.
    assert audit_events("auth.login_failed") == []
    assert client.post("/login", data={"email": doctor.email, "password": PASSWORD}).status_code == 503


def test_the_share_passcode_page_answers_503_when_the_limit_store_is_down(dead_limit_store):
    client = dead_limit_store.test_client()
    assert client.get("/s/" + "t" * 43).status_code == 503
    response = client.post("/s/" + "t" * 43 + "/passcode", data={"passcode": "123456"})
    assert response.status_code == 503
    assert "Temporarily unavailable" in response.get_data(as_text=True)


# --- denials are audited ---------------------------------------------------------------------------------


def test_a_403_is_audited_as_denied(app, client):
    tenant = make_tenant()
    nurse = make_user(tenant, "nurse")
    login(client, nurse.email)

    response = client.get("/users")

    assert response.status_code == 403
    [event] = audit_events("access.denied")
    assert (event.tenant_id, event.actor_user_id, event.actor_role) == (tenant.id, nurse.id, "nurse")
    assert (event.resource_type, event.resource_id, event.outcome) == ("endpoint", "accounts.users", "denied")
    assert event.request_id == response.headers["X-Request-ID"]


def test_another_clinics_id_is_a_404_audited_as_denied(app, client):
    tenant, elsewhere = make_tenant(), make_tenant()
    doctor = make_user(tenant, "doctor")
    theirs = make_patient(elsewhere)
    login(client, doctor.email)

    response = client.get(f"/patients/{theirs.id}")

    assert response.status_code == 404
    assert "not yours to see" in response.get_data(as_text=True)
    [event] = audit_events("access.denied")
    assert (event.tenant_id, event.actor_user_id, event.actor_role) == (tenant.id, doctor.id, "doctor")
    assert (event.resource_type, event.resource_id, event.outcome) == ("patients", str(theirs.id), "denied")
    assert event.patient_id is None  # nothing of the other clinic's patient lands on this chain
    assert event.request_id == response.headers["X-Request-ID"]
    # An id that exists nowhere is a plain 404.
    assert client.get("/patients/999999").status_code == 404
    assert len(audit_events("access.denied")) == 1
    assert verify_chain().intact


# --- tokens never reach the logs -------------------------------------------------------------------------

TOKEN = "Zq9" + "x" * 40
API_TOKEN = "hcrm_" + "Zq9" + "y" * 40  # a personal API token pasted into a URL, or sent as it should be


def test_the_dev_server_request_log_redacts_tokens(app, caplog, monkeypatch):
    # Alembic's fileConfig (migration tests) disables existing loggers; the dev server's must log here.
    monkeypatch.setattr(logging.getLogger("werkzeug"), "disabled", False)
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        with caplog.at_level(logging.INFO, logger="werkzeug"):
            for path in (f"/s/{TOKEN}", f"/reset/{TOKEN}", f"/invitation/{TOKEN}", f"/s/{TOKEN}/check"):
                try:
                    urllib.request.urlopen(f"http://127.0.0.1:{server.server_port}{path}", timeout=10)
                except urllib.error.HTTPError as error:
                    assert error.code in (404, 429)
    finally:
        server.shutdown()
        thread.join(5)
    request_lines = [record.getMessage() for record in caplog.records if record.name == "werkzeug"]
    assert len(request_lines) == 4
    assert all("[redacted]" in line for line in request_lines)
    assert TOKEN not in caplog.text


def test_gunicorns_access_log_redacts_tokens(app, tmp_path):
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    access_log = tmp_path / "access.log"
    env = {
        **os.environ,
        "APP_ENV": "testing",
        "SECRET_KEY": app.config["SECRET_KEY"],
        "DATABASE_URL": app.config["SQLALCHEMY_DATABASE_URI"],
        "MAIL_BACKEND": "outbox",
        "MAIL_OUTBOX_DIR": str(tmp_path / "outbox"),
        "GUNICORN_BIND": f"127.0.0.1:{port}",
        "GUNICORN_ACCESS_LOG": str(access_log),
        "WEB_CONCURRENCY": "1",
    }
    server = subprocess.Popen(
        [str(ROOT / ".venv" / "bin" / "gunicorn"), "-c", str(ROOT / "gunicorn.conf.py"), "wsgi:app"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        _wait_until_serving(port, server)
        for path in (f"/s/{TOKEN}", f"/reset/{TOKEN}?x=1", f"/invitation/{TOKEN}", f"/api/me?t={API_TOKEN}"):
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=10)
            except urllib.error.HTTPError as error:
                assert error.code in (401, 404, 429)
        bearer = urllib.request.Request(
            f"http://127.0.0.1:{port}/api/me", headers={"Authorization": f"Bearer {API_TOKEN}"}
        )
        with pytest.raises(urllib.error.HTTPError):
            urllib.request.urlopen(bearer, timeout=10)  # noqa: S310 - our own http://127.0.0.1 server
    finally:
        server.terminate()
        server.communicate(timeout=20)
    lines = access_log.read_text().splitlines()
    assert len([line for line in lines if "[redacted]" in line]) == 4, lines
    assert TOKEN not in access_log.read_text() and API_TOKEN[5:] not in access_log.read_text()


def _wait_until_serving(port: int, server: subprocess.Popen) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        assert server.poll() is None, "gunicorn exited"
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2)
            return
        except OSError:
            time.sleep(0.2)
    raise AssertionError("gunicorn did not start")
