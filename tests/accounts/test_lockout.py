"""The per-account sign-in limit stays, but a browser that signed in before (it holds a signed device
cookie, OWASP's "device cookies") is counted apart, so someone guessing elsewhere cannot lock the owner
out. Per-client limits bucket IPv6 clients by /64 (IPv4 by address)."""

from __future__ import annotations

import pytest

from healthcrm.accounts import devices
from healthcrm.extensions import client_bucket
from tests.accounts.pages import session_cookie
from tests.factories import PASSWORD, make_tenant, make_user

WRONG = "not the password at all"


def _attempt(client, email: str, password: str = WRONG, ip: str = "203.0.113.7"):
    return client.post(
        "/login", data={"email": email, "password": password}, environ_base={"REMOTE_ADDR": ip}
    )


def _lock_out(app, email: str) -> None:
    attacker = app.test_client()
    for n in range(5):
        assert _attempt(attacker, email, ip=f"198.51.100.{n + 1}").status_code == 422
    assert _attempt(attacker, email, PASSWORD, ip="198.51.100.9").status_code == 429


def test_a_browser_that_signed_in_before_gets_through_a_locked_account(app):
    nurse = make_user(make_tenant(), "nurse")
    owner = app.test_client()
    first = _attempt(owner, nurse.email, PASSWORD)
    assert first.status_code == 303
    [device_header] = [h for h in first.headers.getlist("Set-Cookie") if h.startswith("hc_device=")]
    assert "HttpOnly" in device_header and "SameSite=Strict" in device_header and "Max-Age=" in device_header
    owner.post("/logout", data={})

    _lock_out(app, nurse.email)

    assert _attempt(app.test_client(), nurse.email, PASSWORD).status_code == 429  # a new browser waits
    assert _attempt(owner, nurse.email, PASSWORD).status_code == 303  # the owner's does not
    assert session_cookie(owner)


def test_the_device_bucket_has_its_own_limit(app):
    nurse = make_user(make_tenant(), "nurse")
    owner = app.test_client()
    assert _attempt(owner, nurse.email, PASSWORD).status_code == 303
    owner.post("/logout", data={})
    for _ in range(5):
        assert _attempt(owner, nurse.email).status_code == 422
    # A stolen device cookie gives no more guesses than anyone else gets.
    assert _attempt(owner, nurse.email, PASSWORD).status_code == 429
    # And the shared bucket is untouched: a browser without the cookie still signs in.
    assert _attempt(app.test_client(), nurse.email, PASSWORD).status_code == 303


@pytest.mark.parametrize(
    "cookie",
    [
        pytest.param(lambda email: "forged-not-signed", id="not signed"),
        pytest.param(
            lambda email: devices.new_device_cookie("someone.else@example.com"), id="another account"
        ),
    ],
)
def test_a_forged_or_foreign_device_cookie_does_not_escape_the_lock(app, cookie):
    nurse = make_user(make_tenant(), "nurse")
    _lock_out(app, nurse.email)
    browser = app.test_client()
    browser.set_cookie("hc_device", cookie(nurse.email))

    assert _attempt(browser, nurse.email, PASSWORD).status_code == 429


def test_forty_addresses_of_one_ipv6_64_share_one_bucket(client):
    for n in range(5):
        assert (
            client.post(
                "/forgot",
                data={"email": f"x{n}@nowhere.example"},
                environ_base={"REMOTE_ADDR": f"2001:db8:1:2::{n + 1:x}"},
            ).status_code
            == 303
        )
    for n in range(5, 40):
        refused = client.post(
            "/forgot",
            data={"email": "x@nowhere.example"},
            environ_base={"REMOTE_ADDR": f"2001:db8:1:2:{n:x}::1"},
        )
        assert refused.status_code == 429
    # The next /64 is another client.
    other = client.post(
        "/forgot", data={"email": "x@nowhere.example"}, environ_base={"REMOTE_ADDR": "2001:db8:1:3::1"}
    )
    assert other.status_code == 303


@pytest.mark.parametrize(
    ("address", "bucket"),
    [
        ("203.0.113.7", "203.0.113.7"),
        ("2001:db8:1:2:aaaa:bbbb:cccc:dddd", "2001:db8:1:2::/64"),
        ("2001:DB8:1:2::1", "2001:db8:1:2::/64"),
        ("::ffff:203.0.113.7", "203.0.113.7"),
    ],
)
def test_the_client_bucket_is_the_ipv4_address_or_the_ipv6_64(app, address, bucket):
    with app.test_request_context("/", environ_base={"REMOTE_ADDR": address}):
        assert client_bucket() == bucket
