"""Headers, CSRF, error pages and cookies that every response must get right."""

from __future__ import annotations

import re

import pytest

from healthcrm import create_app
from healthcrm.config import ConfigError
from tests.factories import login, make_patient, make_tenant, make_user


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


def test_production_cookies_are_secure(monkeypatch, tmp_path):
    monkeypatch.setenv("SECRET_KEY", "k" * 40)
    monkeypatch.setenv("DATABASE_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")
    monkeypatch.setenv("REDIS_URL", "redis://127.0.0.1:6379/0")
    app = create_app({"APP_ENV": "production", "INSTANCE_PATH": str(tmp_path)})
    assert app.config["SESSION_COOKIE_SECURE"] is True
    assert app.config["SESSION_COOKIE_HTTPONLY"] is True
    assert app.config["SESSION_COOKIE_SAMESITE"] == "Lax"


def test_embedded_secret_key_is_generated_once_and_kept(monkeypatch, tmp_path):
    monkeypatch.delenv("SECRET_KEY", raising=False)
    first = create_app({"APP_ENV": "development", "INSTANCE_PATH": str(tmp_path)}).config["SECRET_KEY"]
    second = create_app({"APP_ENV": "development", "INSTANCE_PATH": str(tmp_path)}).config["SECRET_KEY"]
    assert first == second and len(first) >= 32
    assert (tmp_path / "secret_key").stat().st_mode & 0o077 == 0
