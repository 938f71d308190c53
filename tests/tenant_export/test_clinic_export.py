"""A clinic's data out as one archive and into an empty database: every row and every file the same."""

from __future__ import annotations

import hashlib
import io
import json
import zipfile
from datetime import timedelta
from email import message_from_bytes
from email.policy import default

import pytest
from flask import current_app
from flask_migrate import upgrade
from sqlalchemy import select

from healthcrm import create_app
from healthcrm.accounts.models import Tenant
from healthcrm.audit.services import verify_chain
from healthcrm.clock import utcnow
from healthcrm.demo.data import seed_demo
from healthcrm.extensions import db
from healthcrm.files.storage import get_storage
from healthcrm.jobs.models import Job
from healthcrm.tenant_export.archive import ImportRefused, build_archive, clinic_tables, import_archive
from tests.factories import login, make_tenant, make_user

TEST_SECRET = "test-secret-key-for-the-import-target-0123456789"


def _rows(tenant_id: int | None) -> dict[str, list[tuple]]:
    """Every exported table's rows (of one clinic, or all when None), in primary-key order."""
    found = {}
    for table in clinic_tables():
        query = select(table)
        if tenant_id is not None:
            if table.name == "tenants":
                query = query.where(table.c.id == tenant_id)
            elif table.name == "audit_chain_heads":
                query = query.where(table.c.chain_key == tenant_id)
            else:
                query = query.where(table.c.tenant_id == tenant_id)
        found[table.name] = [
            tuple(row) for row in db.session.execute(query.order_by(*table.primary_key.columns))
        ]
    return found


def _files(tenant_id: int) -> dict[str, str]:
    storage = get_storage(current_app)
    digests = {}
    for key in storage.list_keys(f"{tenant_id}/"):
        with storage.open_stream(key) as stream:
            digests[key] = hashlib.sha256(stream.read()).hexdigest()
    return digests


def _retrieve_archived(tenant_id: int) -> None:
    """The demo's archived files (GLACIER and DEEP_ARCHIVE), retrieved first as the export's manifest asks:
    an archived object cannot be read, so an export leaves it out (tests/storage_cost/test_restore.py)."""
    storage = get_storage(current_app)
    storage.restore_seconds = 0
    for listed in storage.iter_objects(f"{tenant_id}/"):
        if listed.storage_class in ("GLACIER", "DEEP_ARCHIVE"):
            storage.request_restore(listed.key, days=1, tier="Standard")


@pytest.fixture
def target(tmp_path, outbox_dir):
    """An empty database with the schema (the migrations), and its own storage folder."""
    app = create_app(
        {
            "APP_ENV": "testing",
            "SECRET_KEY": TEST_SECRET,
            "INSTANCE_PATH": str(tmp_path / "target"),
            "SQLALCHEMY_DATABASE_URI": f"sqlite:///{tmp_path / 'target.db'}",
            "STORAGE_LOCAL_ROOT": str(tmp_path / "target-storage"),
            "MAIL_OUTBOX_DIR": str(outbox_dir),
            "TENANT_SCOPE_CHECK": False,
        }
    )
    with app.app_context():
        upgrade()
    return app


def _archive(tenant_id: int, path) -> None:
    with open(path, "wb") as out:
        build_archive(tenant_id, out)


def test_a_demo_clinic_goes_out_and_into_an_empty_database_unchanged(app, target, tmp_path, drain_jobs):
    seed_demo("demo-password-1")
    drain_jobs(60)  # the demo's emails, sent by the worker in CI, stamp their notifications
    clinic = db.session.scalar(select(Tenant).where(Tenant.slug == "riverside"))
    other = db.session.scalar(select(Tenant).where(Tenant.slug != "riverside"))
    _retrieve_archived(clinic.id)
    rows, files = _rows(clinic.id), _files(clinic.id)
    assert sum(len(v) for v in rows.values()) > 1000 and files  # records, audit log, documents
    path = tmp_path / "clinic.zip"
    _archive(clinic.id, path)

    with zipfile.ZipFile(path) as archive:
        manifest = json.loads(archive.read("manifest.json"))
        everything = "".join(archive.read(n).decode(errors="ignore") for n in archive.namelist())
    assert manifest["tables"]["audit_log"] == len(rows["audit_log"])
    files_in = [name for name in manifest["members"] if name.startswith("files/")]
    assert files_in and all(name.startswith(f"files/{clinic.id}/") for name in files_in)
    assert other.name not in everything  # nor its rows

    with target.app_context():
        counts = import_archive(str(path))
        assert counts == {name: len(found) for name, found in rows.items()}
        assert _rows(None) == rows
        assert _files(clinic.id) == files
        assert verify_chain(clinic.id, all_chains=False).intact


def test_a_changed_file_is_refused_naming_it_and_nothing_is_written(app, target, tmp_path):
    tenant = make_tenant("Small Clinic")
    make_user(tenant, "admin")
    get_storage(current_app).put_stream(f"{tenant.id}/docs/a.txt", io.BytesIO(b"original"), "text/plain")
    path, tampered = tmp_path / "a.zip", tmp_path / "b.zip"
    _archive(tenant.id, path)
    with zipfile.ZipFile(path) as source, zipfile.ZipFile(tampered, "w") as copy:
        for item in source.infolist():
            data = source.read(item.filename)
            copy.writestr(item, b"forged!!" if item.filename.endswith("a.txt") else data)
    with target.app_context():
        with pytest.raises(ImportRefused, match=f"files/{tenant.id}/docs/a.txt does not match"):
            import_archive(str(tampered))
        assert db.session.scalar(select(db.func.count()).select_from(Tenant.__table__)) == 0
        import_archive(str(path))
        with pytest.raises(ImportRefused, match="not empty"):
            import_archive(str(path))
    # The command says why (here: the test database was made from the models, with no migrations run).
    result = app.test_cli_runner().invoke(args=["tenant", "import", str(path)])
    assert result.exit_code == 1 and "Not imported: " in result.output


def test_admins_export_from_the_page_get_an_email_and_the_link_ends_after_a_day(
    app, client, inline_jobs, outbox_dir
):
    tenant = make_tenant("Riverbend")
    admin = make_user(tenant, "admin")
    login(client, admin.email)
    started = client.post("/admin/export", data={})
    assert started.status_code == 303
    page = client.get(started.headers["Location"]).get_data(as_text=True)
    assert "Ready:" in page
    job = db.session.scalar(select(Job).where(Job.kind == "tenant_export.build"))
    mails = list(outbox_dir.glob("*.eml"))
    message = message_from_bytes(mails[0].read_bytes(), policy=default)
    assert len(mails) == 1
    assert f"/admin/export/{job.id}/download" in message.get_body(("plain",)).get_content()
    response = client.get(f"/admin/export/{job.id}/download")
    assert response.status_code == 200
    assert "manifest.json" in zipfile.ZipFile(io.BytesIO(response.data)).namelist()
    job.finished_at = utcnow() - timedelta(hours=25)
    db.session.commit()
    assert client.get(f"/admin/export/{job.id}/download").status_code == 410


def test_only_admins_export_and_only_their_clinics_jobs(app, client, inline_jobs):
    mine, theirs = make_tenant(), make_tenant()
    login(client, make_user(mine, "doctor").email)
    assert client.post("/admin/export", data={}).status_code == 403
    other_admin = app.test_client()
    login(other_admin, make_user(theirs, "admin").email)
    job_url = other_admin.post("/admin/export", data={}).headers["Location"]
    admin = app.test_client()
    login(admin, make_user(mine, "admin").email)
    assert admin.get(job_url).status_code == 404
    assert admin.get(f"{job_url}/download").status_code == 404
