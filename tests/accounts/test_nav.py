"""The staff menu: each role sees only the pages it uses, the admin pages grouped under one Admin menu."""

from __future__ import annotations

import re

import pytest

from healthcrm.accounts.roles import STAFF_ROLES
from tests.factories import login, make_tenant, make_user

ADMIN_PAGES = [
    "/users",
    "/audit",
    "/admin/sharing",
    "/outbox",
    "/jobs",
    "/admin/export",
    "/admin/retention",
    "/record-templates",
    "/care/settings",
    "/care/report",
    "/schedule/settings",
    "/admin/storage",
]
CARE_CLINICAL = ["/care/tasks", "/care/inbox", "/schedule"]
EXPECTED = {
    "admin": {"main": ["/patients", "/records", *CARE_CLINICAL], "admin": ADMIN_PAGES},
    "doctor": {"main": ["/patients", "/records", *CARE_CLINICAL], "admin": []},
    "nurse": {"main": ["/patients", "/records", *CARE_CLINICAL], "admin": []},
    "coach": {"main": ["/patients", "/records", "/care/tasks", "/care/inbox", "/schedule"], "admin": []},
    "front_desk": {"main": ["/patients", "/care/tasks", "/care/inbox", "/schedule"], "admin": []},
}


def _nav(html: str) -> tuple[list[str], list[str]]:
    nav = re.search(r'<nav aria-label="Main".*?</nav>', html, re.S).group(0)
    group = re.search(r"<details data-nav-group>.*?</details>", nav, re.S)
    admin = re.findall(r'href="([^"]+)"', group.group(0)) if group else []
    main = re.findall(r'href="([^"]+)"', nav.replace(group.group(0), "") if group else nav)
    return main, admin


@pytest.mark.parametrize("role", STAFF_ROLES)
def test_each_role_sees_only_the_pages_it_uses(app, client, role):
    tenant = make_tenant()
    user = make_user(tenant, role)
    login(client, user.email)
    html = client.get("/patients").get_data(as_text=True)
    main, admin = _nav(html)
    assert [_path(h) for h in main] == EXPECTED[role]["main"]
    assert [_path(h) for h in admin] == EXPECTED[role]["admin"]
    assert ("<summary" in html and ">Admin</summary>" in html) == bool(EXPECTED[role]["admin"])
    # Every page the menu offers opens for this role.
    for href in main + admin:
        assert client.get(href).status_code == 200, href


def test_the_menu_marks_the_current_admin_page_and_has_a_phone_button(app, client):
    tenant = make_tenant()
    login(client, make_user(tenant, "admin").email)
    html = client.get("/audit").get_data(as_text=True)
    assert '<summary class="current">Admin</summary>' in html
    assert re.search(r'<a href="/audit"\s+aria-current="page">Audit log</a>', html)
    assert re.search(
        r'<button type="button" class="nav-toggle" aria-expanded="false" aria-controls="staff-nav"', html
    )
    assert 'id="staff-nav"' in html


def _path(href: str) -> str:
    return href.split("?")[0]
