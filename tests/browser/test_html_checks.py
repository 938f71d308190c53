"""Valid, accessible HTML on every main page: the Nu Html Checker (vnu) and axe-core, signed in as each
role, on the staff pages, the portal, the provider's share pages and the sign-in page.

- vnu checks the HTML the server sent (one Java start for every page) and must report no errors.
  `vnu.jar` is big, so it is not committed: the test reads it from VNU_JAR or .cache/vnu.jar (where
  `.ci/run` puts it) and is skipped, saying how to get it, when it or Java is missing.
- axe-core (vendored in tests/vendor, for tests only) runs in the page at 1280 and 390 px and must find no
  serious or critical violation. The app's CSP blocks `add_script_tag`; `page.evaluate` of the file's
  text runs it without loosening the CSP.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest

from healthcrm.accounts.secrets import hash_password
from healthcrm.extensions import db
from tests.browser.conftest import ARTIFACTS, DESKTOP, PHONE, ROOT
from tests.factories import make_portal_user, make_tenant, make_user
from tests.sharing.factories import make_share, make_shared_patient
from tests.sharing.test_provider import _finalized, _link

pytestmark = pytest.mark.browser

AXE_JS = ROOT / "tests" / "vendor" / "axe-core-4.14.1.min.js"
VNU_JAR = Path(os.environ.get("VNU_JAR") or ROOT / ".cache" / "vnu.jar")
JAVA = shutil.which("java")
HOW_TO_GET_VNU = (
    "the Nu Html Checker is missing: `mkdir -p .cache && cd .cache && npm pack vnu-jar && "
    "tar xzf vnu-jar-*.tgz package/build/dist/vnu.jar && mv package/build/dist/vnu.jar .` "
    "(or set VNU_JAR), and `apt-get install -y default-jre-headless` for Java; .ci/run does both"
)
HTML_DIR = ARTIFACTS / "html"
PASSCODE = "blue-heron-42"

# htmx's `hx-*` attributes are most of the validator's errors (about 1,100). The templates will be moved to
# `data-hx-*` (htmx reads both) in one sweep after the branches of issue 10 are merged; until then these
# errors are left out. Set to False after the rename: the test must then pass with nothing ignored.
IGNORE_HX_UNTIL_RENAMED = False
HX_ATTRIBUTE = re.compile(r"^Attribute [“\"]hx-[a-z-]+[”\"]")

# Other validator errors known at the time of writing, in files other helpers are fixing in parallel
# (issue 10: "duplicate csrf_token ids on the patient page, share form pages without an h1, the provider's
# strip outside any landmark"). Each entry: (a pattern of the page's name, the start of the message).
# Empty these lists as their branches land; anything not listed fails the test.
KNOWN_ERRORS_UNTIL_FIXED: list[tuple[str, str]] = []
# The same for axe: (a pattern of the page's name, the rule, a piece of the offending element's HTML).
KNOWN_AXE_UNTIL_FIXED: list[tuple[str, str, str]] = []

# Left out of axe's run: the provider pages' watermark layer, faint on purpose so that it hides nothing. It is
# decoration (aria-hidden), and the footer carries the same text once at full contrast.
AXE_EXCLUDE = [".share-watermark"]

# axe impacts that fail the test.
BLOCKING_IMPACTS = {"serious", "critical"}


@dataclass
class Visit:
    name: str  # role-page, also the saved file's name
    path: str


def _clinic():
    """One clinic with everything the main pages show: a patient with visits, labs, files and a share."""
    tenant = make_tenant("Riverside Family Clinic")
    admin = make_user(tenant, "admin", full_name="Morgan Reyes")
    doctor = make_user(tenant, "doctor", full_name="Dr. Sam Okafor")
    desk = make_user(tenant, "front_desk", full_name="Lee Park")
    patient = make_shared_patient(tenant, doctor)
    portal = make_portal_user(patient)
    record = _finalized(patient)[-1]
    open_share = make_share(patient)
    passcode_share = make_share(patient, passcode_hash=hash_password(PASSCODE), recipient_name="Dr. Ortiz")
    db.session.commit()
    return {
        "admin": admin,
        "doctor": doctor,
        "front_desk": desk,
        "patient": portal,
        "patient_id": patient.id,
        "record_id": record.id,
        "share_id": open_share.id,
        "open_link": _link(open_share),
        "passcode_link": _link(passcode_share),
    }


def _staff_pages(data: dict) -> dict[str, str]:
    p, r = data["patient_id"], data["record_id"]
    return {
        "patients": "/patients",
        "patient": f"/patients/{p}",
        "record": f"/records/{r}",
        "new-record": f"/patients/{p}/records/new",
        "labs": f"/patients/{p}/labs",
        "records-search": "/records?q=liver",
        "sharing": f"/patients/{p}/shares",
        "share-log": f"/shares/{data['share_id']}",
        "jobs": "/jobs",
    }


def _visits_by_role(data: dict) -> dict[str, list[Visit]]:
    staff = _staff_pages(data)
    admin_only = {
        "audit": "/audit",
        "users": "/users",
        "outbox": "/outbox",
        "sharing-overview": "/admin/sharing",
        "calendar": "/schedule",
        "schedule-settings": "/schedule/settings",
        "schedule-hours": "/schedule/hours",
        "schedule-book": "/schedule/book",
        "retention-due": "/admin/retention/due",
        "retention-hold": f"/admin/retention/patients/{data['patient_id']}/hold",
        "clinic-export": "/admin/export",
        "api-tokens": "/account/tokens",
        "notifications": "/notifications",
    }
    return {
        "admin": [Visit(f"admin-{k}", v) for k, v in {**staff, **admin_only}.items()],
        "doctor": [Visit(f"doctor-{k}", v) for k, v in staff.items()],
        "front_desk": [
            Visit("front_desk-patients", "/patients"),
            Visit("front_desk-patient", staff["patient"]),
            Visit("front_desk-change-requests", "/care/change-requests"),
        ],
        "patient": [
            Visit("patient-portal", "/portal"),
            Visit("patient-shares", "/portal/shares"),
            Visit("patient-profile", "/portal/profile"),
        ],
    }


def _sign_in(page, live_server: str, email: str) -> None:
    from tests.factories import PASSWORD

    page.goto(f"{live_server}/login")
    page.get_by_label("Email").fill(email)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(lambda url: "/login" not in url)


def _axe(page, name: str, source: str) -> list[str]:
    """Run axe-core in the page; the serious and critical violations not known, one line each."""
    if not page.evaluate("() => typeof window.axe !== 'undefined'"):
        page.evaluate(source)
    result = page.evaluate(
        "async (skip) => await axe.run({exclude: skip}, {resultTypes: ['violations']})", AXE_EXCLUDE
    )
    problems = []
    for violation in result["violations"]:
        if violation["impact"] not in BLOCKING_IMPACTS:
            continue
        nodes = [
            node
            for node in violation["nodes"]
            if not any(
                re.fullmatch(pattern, name) and rule == violation["id"] and piece in node["html"]
                for pattern, rule, piece in KNOWN_AXE_UNTIL_FIXED
            )
        ]
        if not nodes:
            continue
        targets = [" ".join(node["target"]) for node in nodes][:5]
        problems.append(f"{violation['impact']} {violation['id']}: {violation['help']} at {targets}")
    return problems


def _collect(new_context, live_server: str, data: dict, check) -> dict[str, Path]:
    """Visit every page as its role at both widths; save the server's HTML of each (once); `check(page,
    name, width)` runs on each rendered page."""
    HTML_DIR.mkdir(parents=True, exist_ok=True)
    saved: dict[str, Path] = {}

    def visit(page, name: str, path: str, width: int) -> None:
        response = page.goto(f"{live_server}{path}")
        assert response is not None and response.status == 200, f"{name}: {path} answered {response.status}"
        if name not in saved:
            saved[name] = HTML_DIR / f"{name}.html"
            saved[name].write_text(response.text(), encoding="utf-8")
        check(page, name, width)

    for viewport in (DESKTOP, PHONE):
        width = viewport["width"]
        anonymous = new_context(viewport=viewport).new_page()
        visit(anonymous, "login", "/login", width)
        for role, visits in _visits_by_role(data).items():
            page = new_context(viewport=viewport).new_page()
            _sign_in(page, live_server, data[role].email)
            for v in visits:
                visit(page, v.name, v.path, width)
        # The outside provider: the landing page, the passcode step, then every tab of an open share.
        provider = new_context(viewport=viewport).new_page()
        visit(provider, "provider-landing", data["passcode_link"], width)
        provider.get_by_role("button", name="Continue").click()
        provider.get_by_label("Passcode").wait_for()
        saved.setdefault("provider-passcode", HTML_DIR / "provider-passcode.html").write_text(
            provider.content(), encoding="utf-8"
        )
        check(provider, "provider-passcode", width)
        opened = new_context(viewport=viewport).new_page()
        opened.goto(f"{live_server}{data['open_link']}")
        opened.get_by_role("button", name="Continue").click()
        opened.wait_for_url(re.compile(r"/summary$"))
        for tab in ("summary", "labs", "records", "files", "scores"):
            visit(opened, f"provider-{tab}", f"{data['open_link']}/{tab}", width)
    return saved


def _vnu(files: list[Path]) -> list[dict]:
    """Run the Nu Html Checker once over every file; its messages (JSON on stderr)."""
    done = subprocess.run(
        [JAVA, "-jar", str(VNU_JAR), "--errors-only", "--format", "json", *map(str, files)],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    return json.loads(done.stderr or '{"messages": []}')["messages"]


def _ignored(page: str, message: str) -> bool:
    if IGNORE_HX_UNTIL_RENAMED and HX_ATTRIBUTE.match(message):
        return True
    return any(
        re.fullmatch(pattern, page) and message.startswith(start)
        for pattern, start in KNOWN_ERRORS_UNTIL_FIXED
    )


def test_every_main_page_is_valid_html_and_has_no_serious_axe_violations(new_context, live_server):
    if JAVA is None or not VNU_JAR.exists():
        pytest.skip(HOW_TO_GET_VNU)
    data = _clinic()
    source = AXE_JS.read_text(encoding="utf-8")
    axe_problems: list[str] = []

    def check(page, name: str, width: int) -> None:
        axe_problems.extend(f"{name} at {width} px: {problem}" for problem in _axe(page, name, source))

    saved = _collect(new_context, live_server, data, check)

    messages = _vnu(list(saved.values()))
    errors, hx_ignored = [], 0
    for message in messages:
        page = Path(message.get("url", "")).stem
        text = message.get("message", "")
        if message.get("type") != "error" and message.get("subType") != "fatal":
            continue
        if _ignored(page, text):
            hx_ignored += 1
            continue
        errors.append(f"{page}.html line {message.get('lastLine')}: {text}")
    report = ARTIFACTS / "html-checks.txt"
    report.write_text(
        f"{len(saved)} pages; {hx_ignored} ignored (hx-* until renamed, known until fixed)\n\nvnu errors:\n"
        + "\n".join(errors)
        + "\n\naxe (serious, critical):\n"
        + "\n".join(axe_problems)
        + "\n",
        encoding="utf-8",
    )
    assert not errors, f"{len(errors)} validator errors (all in {report}):\n" + "\n".join(errors[:40])
    assert not axe_problems, f"{len(axe_problems)} axe violations:\n" + "\n".join(axe_problems)
