"""records.search_text, indexed for substring search (SQLite FTS5 trigram, PostgreSQL pg_trgm)

The list's search used to OR LIKE '%term%' across records, patients and diagnoses. Each record now keeps
that text in one lower-cased column (see `healthcrm.records.search`): this revision adds it, fills it for
the records already there, builds the index (an FTS5 table kept by triggers on SQLite, a GIN trigram
index on PostgreSQL) and drops the per-column trigram indexes of the records and diagnoses that no
query uses any more (the patients' stay: the patient list searches those columns).

A later SQLite migration that rebuilds `medical_records` in batch mode drops its triggers: such a
migration must run `healthcrm.records.search.SQLITE_DDL` again.

Revision ID: 3f1c9a7d2b10
Revises: 82da51af9e0b
Create Date: 2026-11-23 04:20:00

"""
from collections import defaultdict

import sqlalchemy as sa
from alembic import op

from healthcrm.records.search import POSTGRES_DDL, SQLITE_DDL, build_search_text

revision = '3f1c9a7d2b10'
down_revision = '82da51af9e0b'
branch_labels = None
depends_on = None

OLD_TRIGRAM_INDEXES = [
    ("ix_records_complaint_trgm", "medical_records", "lower(chief_complaint)"),
    ("ix_records_notes_trgm", "medical_records", "lower(notes)"),
    ("ix_diagnoses_name_trgm", "diagnoses", "lower(name)"),
    ("ix_diagnoses_code_trgm", "diagnoses", "replace(lower(code), '.', '')"),
]
BATCH = 5_000


def _fill_search_text(connection) -> None:
    records = sa.table(
        "medical_records", sa.column("id"), sa.column("patient_id"), sa.column("chief_complaint"),
        sa.column("notes"), sa.column("search_text"),
    )
    patients = sa.table("patients", sa.column("id"), sa.column("first_name"), sa.column("last_name"),
                        sa.column("mrn"))
    diagnoses = sa.table("diagnoses", sa.column("record_id"), sa.column("code"), sa.column("name"),
                         sa.column("is_primary"), sa.column("id"))
    last_id = 0
    while True:
        rows = connection.execute(
            sa.select(records.c.id, records.c.chief_complaint, records.c.notes, patients.c.first_name,
                      patients.c.last_name, patients.c.mrn)
            .join(patients, patients.c.id == records.c.patient_id)
            .where(records.c.id > last_id)
            .order_by(records.c.id)
            .limit(BATCH)
        ).all()
        if not rows:
            return
        ids = [row.id for row in rows]
        by_record = defaultdict(list)
        for record_id, code, name in connection.execute(
            sa.select(diagnoses.c.record_id, diagnoses.c.code, diagnoses.c.name)
            .where(diagnoses.c.record_id.in_(ids))
            .order_by(diagnoses.c.record_id, diagnoses.c.is_primary.desc(), diagnoses.c.id)
        ):
            by_record[record_id].append((code, name))
        connection.execute(
            records.update().where(records.c.id == sa.bindparam("record_id")),
            [
                {
                    "record_id": row.id,
                    "search_text": build_search_text(row.chief_complaint, row.notes, row.first_name,
                                                     row.last_name, row.mrn, by_record[row.id]),
                }
                for row in rows
            ],
        )
        last_id = ids[-1]


def upgrade():
    with op.batch_alter_table('medical_records', schema=None) as batch_op:
        batch_op.add_column(sa.Column('search_text', sa.Text(), server_default='', nullable=False))
    connection = op.get_bind()
    _fill_search_text(connection)
    if connection.dialect.name == "sqlite":
        for statement in SQLITE_DDL:
            op.execute(statement)
        # Index the text the records already have.
        op.execute("INSERT INTO record_search(record_search) VALUES ('rebuild')")
    elif connection.dialect.name == "postgresql":
        for name, _table, _expression in OLD_TRIGRAM_INDEXES:
            op.execute(f"DROP INDEX IF EXISTS {name}")
        for statement in POSTGRES_DDL:
            op.execute(statement)


def downgrade():
    connection = op.get_bind()
    if connection.dialect.name == "sqlite":
        for trigger in ("record_search_ai", "record_search_ad", "record_search_au"):
            op.execute(f"DROP TRIGGER IF EXISTS {trigger}")
        op.execute("DROP TABLE IF EXISTS record_search")
    elif connection.dialect.name == "postgresql":
        op.execute("DROP INDEX IF EXISTS ix_records_search_trgm")
        for name, table, expression in OLD_TRIGRAM_INDEXES:
            op.execute(f"CREATE INDEX IF NOT EXISTS {name} ON {table} USING gin (({expression}) gin_trgm_ops)")
    if connection.dialect.name == "sqlite":
        # Native DROP COLUMN (SQLite 3.35+): a batch rebuild would drop a table the diagnoses point at.
        op.execute("ALTER TABLE medical_records DROP COLUMN search_text")
    else:
        op.drop_column('medical_records', 'search_text')
