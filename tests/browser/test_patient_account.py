"""At 390 px: registering with a code and the patient's security pages fit the phone (no sideways scroll)."""

from __future__ import annotations

from tests.browser.conftest import PHONE
from tests.factories import make_patient, make_portal_user, make_tenant

OVERFLOW = "() => document.documentElement.scrollWidth - document.documentElement.clientWidth"


def test_register_and_security_pages_fit_a_phone(app, new_context, live_server, sign_in):
    user = make_portal_user(make_patient(make_tenant()))
    page = new_context(viewport=PHONE).new_page()
    page.goto(f"{live_server}/register")
    assert page.get_by_label("Your date of birth").is_visible()
    assert page.evaluate(OVERFLOW) <= 0, "/register scrolls sideways at 390 px"
    sign_in(page, user.email)
    for path in ("/account/security", "/account/mfa/setup"):
        page.goto(f"{live_server}{path}")
        assert page.evaluate(OVERFLOW) <= 0, f"{path} scrolls sideways at 390 px"
