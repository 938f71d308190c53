"""The Alembic history builds the same schema as the models, on SQLite and (in CI) PostgreSQL."""

from __future__ import annotations

import os
from datetime import datetime

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from flask_migrate import downgrade, upgrade
from sqlalchemy import create_engine, inspect, text

from healthcrm import create_app
from healthcrm.audit.services import Actor
from healthcrm.extensions import db, include_in_autogenerate, include_name_in_autogenerate
from healthcrm.records.models import Diagnosis, MedicalRecord
from healthcrm.records.services import RecordFilters, search_records
from tests.factories import make_patient, make_tenant, make_user

DATABASE_URL = os.environ.get("DATABASE_URL", "")


def _fresh_url(tmp_path) -> str:
    if not DATABASE_URL.startswith("postgresql"):
        return f"sqlite:///{tmp_path / 'migrated.db'}"
    base, name = DATABASE_URL.rsplit("/", 1)
    target = f"{name}_migrations"
    admin = create_engine(f"{base}/postgres", isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(text(f"DROP DATABASE IF EXISTS {target} WITH (FORCE)"))
        connection.execute(text(f"CREATE DATABASE {target}"))
    admin.dispose()
    return f"{base}/{target}"


@pytest.fixture
def migrated_app(tmp_path):
    app = create_app(
        {
            "APP_ENV": "testing",
            "INSTANCE_PATH": str(tmp_path),
            "SECRET_KEY": "x",
            "SQLALCHEMY_DATABASE_URI": _fresh_url(tmp_path),
        }
    )
    with app.app_context():
        upgrade()
        yield app
        db.session.remove()
        db.engine.dispose()


def test_migrations_match_the_models(migrated_app):
    with db.engine.connect() as connection:
        context = MigrationContext.configure(
            connection,
            opts={
                "compare_type": True,
                "include_object": include_in_autogenerate,
                "include_name": include_name_in_autogenerate,
            },
        )
        differences = compare_metadata(context, db.metadata)
    assert differences == [], f"models and migrations differ; run `flask db migrate`: {differences}"


def test_migrated_audit_log_is_append_only(migrated_app):
    db.session.execute(
        text(
            "INSERT INTO audit_log (occurred_at, action, outcome, prev_hash, hash) "
            "VALUES ('2026-01-01 00:00:00', 'test', 'success', 'a', 'b')"
        )
    )
    db.session.commit()
    with pytest.raises(Exception, match="append-only"):
        db.session.execute(text("UPDATE audit_log SET action = 'forged'"))
    db.session.rollback()


def test_downgrade_to_base_and_up_again(migrated_app):
    downgrade(revision="base")
    assert set(inspect(db.engine).get_table_names()) <= {"alembic_version"}
    upgrade()
    assert "audit_log" in inspect(db.engine).get_table_names()


def test_the_search_migration_indexes_the_records_already_there(migrated_app):
    tenant = make_tenant()
    doctor = make_user(tenant, "doctor")
    patient = make_patient(tenant, last_name="Backfill", mrn="MRN-000777")
    record = MedicalRecord(
        tenant_id=tenant.id,
        patient_id=patient.id,
        doctor_id=doctor.id,
        author_id=doctor.id,
        visit_at=datetime(2026, 11, 20, 9, 30),
        chief_complaint="Itching",
        diagnoses=[
            Diagnosis(tenant_id=tenant.id, code="K70.31", name="Alcoholic cirrhosis of liver with ascites")
        ],
    )
    db.session.add(record)
    db.session.commit()
    actor = Actor(tenant_id=tenant.id, user_id=doctor.id, role=doctor.role)
    db.session.remove()

    downgrade(revision="82da51af9e0b")  # the schema before the column existed
    upgrade()

    for query in ("backfill", "000777", "k7031", "ascites itching", "it"):
        found = search_records(actor, RecordFilters(query=query)).records
        assert [r.chief_complaint for r in found] == ["Itching"], query
