"""The audit log in people's words: a label for every action code the app writes, names instead of ids,
and the codes kept in each event's detail."""

from __future__ import annotations

import ast
import re
from pathlib import Path

from sqlalchemy import event as sa_event

from healthcrm.audit.labels import ACTION_LABELS, action_label
from healthcrm.audit.services import Actor, record_event
from healthcrm.extensions import db
from healthcrm.files import models as file_models
from healthcrm.sharing import models as share_models
from tests.factories import login, make_patient, make_tenant, make_user

PACKAGE = Path(__file__).resolve().parents[2] / "healthcrm"
CODE = re.compile(r"^[a-z_]+\.[a-z_]+$")
# Calls whose action argument is an audit code: (function name, index of the positional argument).
AUDIT_CALLS = {"record_event": 1, "audit_file": 1, "_save": 3}


def _constants(node: ast.AST) -> set[str]:
    """String constants an expression can evaluate to (a literal, or either branch of `a if c else b`)."""
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return {node.value}
    if isinstance(node, ast.IfExp):
        return _constants(node.body) | _constants(node.orelse)
    return set()


def _codes_written_by_the_app() -> set[str]:
    """Every action code in the code base: the literal action arguments of the audit calls, the values
    assigned to a variable named `action`, and the two families built from constants (f"share.{kind}"
    from the share event kinds, f"attachment.{action}" from the file access kinds)."""
    codes: set[str] = set()
    for path in PACKAGE.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Call):
                name = getattr(node.func, "id", None) or getattr(node.func, "attr", None)
                index = AUDIT_CALLS.get(name)
                if index is not None and len(node.args) > index:
                    codes |= _constants(node.args[index])
                for keyword in node.keywords:
                    if keyword.arg == "action" and name in AUDIT_CALLS:
                        codes |= _constants(keyword.value)
            elif isinstance(node, ast.Assign) and any(
                getattr(t, "id", None) == "action" for t in node.targets
            ):
                codes |= {value for value in _constants(node.value) if CODE.match(value)}
    codes |= {f"share.{getattr(share_models, n)}" for n in dir(share_models) if n.startswith("EVENT_")}
    codes |= {f"share.{kind}" for kind in share_models.EVENT_LABELS}
    codes |= {f"attachment.{getattr(file_models, n)}" for n in dir(file_models) if n.startswith("ACCESS_")}
    return {code for code in codes if CODE.match(code)}


def test_every_action_code_the_app_writes_has_a_label():
    codes = _codes_written_by_the_app()
    # The scan finds the families the issue saw as raw codes, so it cannot pass by finding nothing.
    assert {"share.code_verified", "attachment.upload_start", "auth.login", "record.create"} <= codes
    assert len(codes) > 60
    missing = sorted(codes - ACTION_LABELS.keys())
    assert not missing, f"action codes without a label in healthcrm/audit/labels.py: {missing}"


def test_an_unknown_code_still_reads_as_words():
    assert action_label("attachment.something_new") == "Attachment: something new"
    assert action_label("share.code_verified") == "Provider's email code verified"


def _sample_events(tenant, admin, patient, share_recipient: str) -> None:
    from datetime import timedelta

    from healthcrm.clock import utcnow
    from healthcrm.sharing.models import ShareLink

    share = ShareLink(
        tenant_id=tenant.id,
        patient_id=patient.id,
        created_by_id=admin.id,
        recipient_name=share_recipient,
        recipient_email="ortiz@hepatology.example.com",
        scope="all",
        expires_at=utcnow() + timedelta(days=7),
    )
    db.session.add(share)
    db.session.flush()
    actor = Actor(tenant_id=tenant.id, user_id=admin.id, role="admin")
    record_event(
        actor, "patient.view", resource_type="patient", resource_id=patient.id, patient_id=patient.id
    )
    record_event(
        Actor(tenant_id=tenant.id, role="provider", share_link_id=share.id),
        "share.code_verified",
        resource_type="share",
        resource_id=share.id,
        patient_id=patient.id,
    )
    record_event(
        actor, "attachment.upload_start", resource_type="record", resource_id=1, patient_id=patient.id
    )
    db.session.commit()


def test_the_audit_log_shows_names_and_labels_and_keeps_codes_in_the_detail(app, client):
    tenant = make_tenant()
    admin = make_user(tenant, "admin", full_name="Morgan Reyes")
    patient = make_patient(tenant, first_name="Maria", last_name="Anderson")
    _sample_events(tenant, admin, patient, "Dr. Lena Ortiz")
    login(client, admin.email)
    html = client.get("/audit").get_data(as_text=True)
    table = html[html.index("<tbody>") : html.index("</tbody>")]
    visible = re.sub(r"<details.*?</details>", "", table, flags=re.S)
    assert "Morgan Reyes (Administrator)" in visible
    assert f"Maria Anderson (MRN {patient.mrn})" in visible
    assert "Dr. Lena Ortiz" in visible
    assert "Provider&#39;s email code verified" in visible or "Provider's email code verified" in visible
    assert "Started a file upload" in visible
    for raw in ("share.code_verified", "attachment.upload_start", f"user {admin.id} (admin)"):
        assert raw not in visible
    # The codes are still there, in each event's detail.
    assert "<code>share.code_verified</code>" in table and "<code>attachment.upload_start</code>" in table


def test_the_audit_log_loads_names_without_a_query_per_event(app, client):
    tenant = make_tenant()
    admin = make_user(tenant, "admin")
    patient = make_patient(tenant)
    login(client, admin.email)

    def count_queries() -> int:
        statements: list[str] = []

        def before(conn, cursor, statement, *args):
            statements.append(statement)

        sa_event.listen(db.engine, "before_cursor_execute", before)
        try:
            assert client.get("/audit").status_code == 200
        finally:
            sa_event.remove(db.engine, "before_cursor_execute", before)
        return len(statements)

    _sample_events(tenant, admin, patient, "Dr. One")
    few = count_queries()
    for n in range(6):
        other_user = make_user(tenant, "nurse")
        other_patient = make_patient(tenant)
        _sample_events(tenant, other_user, other_patient, f"Dr. {n}")
    assert count_queries() == few
