"""Every portal page on a phone (390 × 844): no sideways scroll, no text spilling out of its cell or
button, and axe-core finds nothing serious.

Which pages: enumerated at run time from `app.url_map`, every GET rule under /portal. A rule without URL
arguments is opened as is; a rule with arguments is filled from the patient's OWN objects, made by the
factories of the isolation matrix (tests/portal/test_portal_isolation.py ARGUMENTS, applied to the signed-in
patient instead of another one), so a new argument name needs one entry there and nothing here. Answers that
are not an HTML page (a file download, an htmx fragment such as the notification badge) are left out; every
page must answer 200.

The patient has two visits with diagnoses, vitals and a prescription, results, an allergy, a message thread,
a document and a notification. Each page is saved as a screenshot in test-artifacts/portal-390/.
"""

from __future__ import annotations

import re

import pytest

from tests.browser.conftest import ARTIFACTS, PHONE
from tests.browser.test_html_checks import AXE_JS, _axe
from tests.factories import make_tenant
from tests.portal.test_portal_isolation import ARGUMENTS, _fill, _owner, portal_rules

pytestmark = pytest.mark.browser

SHOTS = ARTIFACTS / "portal-390"

# The widest element past the right edge, named as a person would find it in the page.
WIDEST = """() => {
  const limit = window.innerWidth;
  let worst = null;
  for (const el of document.body.querySelectorAll('*')) {
    const box = el.getBoundingClientRect();
    if (box.width === 0 || box.right <= limit + 0.5) continue;
    if (!worst || box.right > worst.right) {
      const classes = typeof el.className === 'string' ? el.className.trim().split(/\\s+/) : [];
      const cls = classes.filter(Boolean).map((c) => '.' + c).join('');
      const name = el.tagName.toLowerCase() + (el.id ? '#' + el.id : '') + cls;
      worst = {right: Math.round(box.right), name, text: (el.textContent || '').trim().slice(0, 60)};
    }
  }
  return {scroll: document.documentElement.scrollWidth, inner: limit, worst};
}"""

# Boxes whose content spills out of them (a squeezed table cell, a button narrower than its word): the page
# may not scroll, but the text overlaps its neighbour.
SPILLED = """() => {
  const found = [];
  for (const el of document.body.querySelectorAll('th, td, button, label, h1, h2, h3, dt, dd')) {
    if (el.clientWidth === 0 || getComputedStyle(el).overflowX !== 'visible') continue;
    if (el.scrollWidth > el.clientWidth + 1) {
      found.push(el.tagName.toLowerCase() + ' "' + (el.textContent || '').trim().slice(0, 30) + '" ' +
                 el.scrollWidth + ' > ' + el.clientWidth);
    }
  }
  return found.slice(0, 5);
}"""


def _pages(app, values: dict[str, str]) -> list[tuple[str, str]]:
    pages = []
    for rule in portal_rules(app):
        if "GET" not in rule.methods or not rule.rule.startswith("/portal"):
            continue
        pages.append((rule.endpoint, _fill(rule, values)))
    return sorted(pages, key=lambda page: page[1])


def test_every_portal_page_fits_a_phone_and_has_no_serious_axe_violation(
    app, new_context, live_server, sign_in, inline_jobs
):
    me = _owner(make_tenant("Phone Clinic"))
    values = {name: make(me) for name, make in ARGUMENTS.items()}
    pages = _pages(app, values)
    SHOTS.mkdir(parents=True, exist_ok=True)
    source = AXE_JS.read_text()

    page = new_context(viewport=PHONE).new_page()
    sign_in(page, me.user.email)
    too_wide, axe_problems, not_found, checked = [], [], [], []
    for endpoint, path in pages:
        # Asked first with the page's cookies: a download cannot be opened as a page.
        answer = page.request.get(f"{live_server}{path}", max_redirects=0)
        if answer.status != 200:
            not_found.append(f"{endpoint} {path}: {answer.status}")
            continue
        if "text/html" not in answer.headers.get("content-type", "") or "<main" not in answer.text():
            continue  # a file or a fragment, not a page
        page.goto(f"{live_server}{path}")
        checked.append(endpoint)
        page.screenshot(path=str(SHOTS / f"{re.sub(r'[^a-z0-9]+', '-', endpoint)}.png"), full_page=True)
        width = page.evaluate(WIDEST)
        if width["scroll"] > width["inner"]:
            too_wide.append(f"{path}: {width['scroll']} px wide, widest {width['worst']}")
        spilled = page.evaluate(SPILLED)
        if spilled:
            too_wide.append(f"{path}: content spills out of its box: {spilled}")
        axe_problems.extend(f"{path}: {problem}" for problem in _axe(page, endpoint, source))

    # messages.attachment pairs the thread with a document not attached to it: a 404 of the test's making.
    not_found = [line for line in not_found if not line.startswith("portal_messages.attachment ")]
    assert not_found == [], "own pages that did not open:\n" + "\n".join(not_found)
    assert len(checked) >= 15, checked
    assert too_wide == [], "pages that do not fit 390 px:\n" + "\n".join(too_wide)
    assert axe_problems == [], "axe (serious, critical) at 390 px:\n" + "\n".join(axe_problems)
