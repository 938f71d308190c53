"""Browser fixtures: the test app served on a real port, and Debian's Chromium driven by Playwright.

One browser for the whole session, a fresh context (cookies, storage) per test. Without Chromium every
browser test is skipped with a reason that says how to install it, so `make test` never hides it.
"""

from __future__ import annotations

import contextlib
import re
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from werkzeug.serving import make_server

from tests.factories import PASSWORD

ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / "test-artifacts"
CHROMIUM_PATHS = ("/usr/bin/chromium", "/usr/lib/chromium/chromium")
CHROMIUM = next((path for path in CHROMIUM_PATHS if Path(path).exists()), None)
NO_CHROMIUM = "Chromium is not installed: apt-get install -y chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
DESKTOP = {"width": 1280, "height": 800}
PHONE = {"width": 390, "height": 844}
TIMEOUT_MS = 10_000


def pytest_collection_modifyitems(config, items) -> None:
    """Skip this folder's tests, loudly, when there is no Chromium to drive."""
    if CHROMIUM is not None:
        return
    here = Path(__file__).parent
    skip = pytest.mark.skip(reason=NO_CHROMIUM)
    for item in items:
        if here in Path(item.path).parents:
            item.add_marker(skip)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item, call):
    # Keep each phase's report on the test so the page fixture can tell whether the test failed.
    report = yield
    setattr(item, f"report_{report.when}", report)
    return report


@pytest.fixture(scope="session")
def browser():
    if CHROMIUM is None:
        pytest.skip(NO_CHROMIUM)
    from playwright.sync_api import sync_playwright

    playwright = sync_playwright().start()
    chromium = playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
    yield chromium
    chromium.close()
    playwright.stop()


@pytest.fixture
def live_server(app, live_server_port) -> Iterator[str]:
    """The test's app on 127.0.0.1 and the session's port; emailed links point at it. Yields the base URL."""
    server = make_server("127.0.0.1", live_server_port, app, threaded=True)
    url = f"http://127.0.0.1:{server.server_port}"
    app.config["PUBLIC_URL"] = url
    thread = threading.Thread(target=server.serve_forever, name="live-server", daemon=True)
    thread.start()
    yield url
    server.shutdown()
    thread.join(timeout=10)
    server.server_close()


@dataclass
class ConsoleLog:
    """What the pages printed to the browser console, and the JavaScript errors they raised."""

    messages: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    expected: list[str] = field(default_factory=list)

    def allow(self, text: str) -> None:
        """Errors containing `text` are expected (the browser logs every 4xx page it loads)."""
        self.expected.append(text)

    def watch(self, page) -> None:
        page.on("console", lambda message: self._console(message.type, message.text, page.url))
        page.on("pageerror", lambda error: self.errors.append(f"{page.url}: uncaught {error}"))

    def _console(self, kind: str, text: str, url: str) -> None:
        self.messages.append(f"{kind}: {text}")
        if kind == "error" or "Content Security Policy" in text:
            self.errors.append(f"{url}: {text}")

    def assert_clean(self) -> None:
        errors = [error for error in self.errors if not any(text in error for text in self.expected)]
        assert not errors, "the browser reported errors:\n" + "\n".join(errors)


@pytest.fixture
def console() -> ConsoleLog:
    return ConsoleLog()


@pytest.fixture
def new_context(browser, console, live_server, request) -> Iterator[Callable]:
    """Open more browser contexts (another viewport, JavaScript off); each page's console is watched.

    They close before the live server stops, and screenshot their pages first if the test failed."""
    contexts = []

    def open_context(**options):
        context = browser.new_context(**{"viewport": DESKTOP, **options})
        context.set_default_timeout(TIMEOUT_MS)
        context.on("page", console.watch)
        contexts.append(context)
        return context

    yield open_context
    reports = (getattr(request.node, f"report_{when}", None) for when in ("setup", "call"))
    failed = any(report is not None and report.failed for report in reports)
    for number, context in enumerate(contexts):
        if failed:
            _save_failure_screenshots(context, request.node.name, number)
        context.close()


def _save_failure_screenshots(context, test_name: str, number: int) -> None:
    folder = ARTIFACTS / "failures"
    folder.mkdir(parents=True, exist_ok=True)
    safe = re.sub(r"[^A-Za-z0-9_.-]+", "-", test_name)
    for index, page in enumerate(context.pages):
        # A screenshot is a courtesy: never let it hide the real failure.
        with contextlib.suppress(Exception):
            page.screenshot(path=str(folder / f"{safe}-{number}-{index}.png"), full_page=True)


@pytest.fixture
def page(new_context):
    """A 1280x800 page in a fresh context (no cookies); a screenshot lands in test-artifacts/ on failure."""
    return new_context().new_page()


@pytest.fixture
def sign_in(live_server) -> Callable:
    """Sign in through the form, as a person would, and wait for the page it leads to."""

    def sign_in_as(page, email: str, password: str = PASSWORD) -> None:
        page.goto(f"{live_server}/login")
        page.get_by_label("Email").fill(email)
        page.get_by_label("Password").fill(password)
        with page.expect_response(lambda r: "/login" in r.url and r.request.method == "POST") as answer:
            page.get_by_role("button", name="Sign in").click()
        assert answer.value.status == 303, f"sign-in as {email} failed ({answer.value.status})"
        page.wait_for_url(lambda url: "/login" not in url)

    return sign_in_as


# --- a small clinic to click through ----------------------------------------------------------------

# 24 of the 30 names contain "son", so searching "son" still leaves two pages of 20.
# fmt: off
SON_SURNAMES = [
    "Anderson", "Carlson", "Dickson", "Emerson", "Ferguson", "Gibson", "Harrison", "Hudson", "Jackson",
    "Jameson", "Johnson", "Lawson", "Madison", "Morrison", "Nelson", "Olson", "Pearson", "Peterson",
    "Richardson", "Robinson", "Stevenson", "Thompson", "Watson", "Wilson",
]
OTHER_SURNAMES = ["Garcia", "Kim", "Lee", "Lopez", "Nguyen", "Patel"]
FIRST_NAMES = [
    "Maria", "James", "Aisha", "Wei", "Olivia", "Noah", "Fatima", "Liam", "Sofia", "Ethan", "Amara", "Lucas",
    "Hana", "Mateo", "Chloe", "Omar", "Grace", "Diego", "Priya", "Samuel", "Elena", "Kofi", "Mia", "Yusuf",
    "Ava", "Ravi", "Zoe", "Leo", "Ines", "Theo",
]
# fmt: on
STAGES = ["active", "new", "onboarding", "maintenance", "active", "discharged"]


@dataclass
class Clinic:
    tenant: object
    admin: object
    doctor: object
    coach: object
    patients: list

    def sorted_patients(self, term: str = "") -> list:
        term = term.lower()
        found = [p for p in self.patients if term in f"{p.first_name} {p.last_name} {p.email}".lower()]
        return sorted(found, key=lambda p: (p.last_name, p.first_name, p.id))


@pytest.fixture
def clinic(app) -> Clinic:
    from datetime import date

    from tests.factories import make_patient, make_tenant, make_user

    tenant = make_tenant("Riverside Family Clinic")
    # example.com, not .test: the forms' email check refuses special-use domains.
    domain = f"clinic{tenant.id}.example.com"
    admin = make_user(tenant, "admin", full_name="Morgan Reyes", email=f"morgan@{domain}")
    doctor = make_user(tenant, "doctor", full_name="Dr. Sam Okafor", email=f"sam@{domain}")
    coach = make_user(tenant, "coach", full_name="Dana Whitfield", email=f"dana@{domain}")
    patients = []
    for n, (first, last) in enumerate(zip(FIRST_NAMES, SON_SURNAMES + OTHER_SURNAMES, strict=True)):
        patients.append(
            make_patient(
                tenant,
                first_name=first,
                last_name=last,
                email=f"{first}.{last}@example.com".lower(),
                phone=f"(555) 201-{1000 + n * 37:04d}",
                date_of_birth=date(1950 + n, 1 + n % 12, 1 + n % 28),
                sex="male" if n % 2 else "female",
                care_stage=STAGES[n % len(STAGES)],
                assigned_coach_id=coach.id if n % 3 == 0 else None,
                insurance_provider="Blue Cross" if n % 4 else None,
            )
        )
    return Clinic(tenant, admin, doctor, coach, patients)
