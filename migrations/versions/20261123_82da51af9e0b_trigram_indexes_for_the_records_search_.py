"""trigram indexes for the records search on PostgreSQL

The records list searches complaints, notes, patient names and MRNs, and diagnosis names and codes with
LIKE '%term%'. A B-tree cannot help such a pattern; pg_trgm GIN indexes on the same expressions can.
SQLite has no equivalent here, so this revision does nothing there.

"""
from alembic import op


# revision identifiers, used by Alembic.
revision = '82da51af9e0b'
down_revision = '666bda87e792'
branch_labels = None
depends_on = None

# (index name, table, indexed expression): the expressions are exactly those the search uses.
TRIGRAM_INDEXES = [
    ("ix_records_complaint_trgm", "medical_records", "lower(chief_complaint)"),
    ("ix_records_notes_trgm", "medical_records", "lower(notes)"),
    ("ix_patients_first_name_trgm", "patients", "lower(first_name)"),
    ("ix_patients_last_name_trgm", "patients", "lower(last_name)"),
    ("ix_patients_mrn_trgm", "patients", "lower(mrn)"),
    ("ix_diagnoses_name_trgm", "diagnoses", "lower(name)"),
    ("ix_diagnoses_code_trgm", "diagnoses", "replace(lower(code), '.', '')"),
]


def upgrade():
    if op.get_bind().dialect.name != "postgresql":
        return
    op.execute("CREATE EXTENSION IF NOT EXISTS pg_trgm")
    for name, table, expression in TRIGRAM_INDEXES:
        op.execute(f"CREATE INDEX IF NOT EXISTS {name} ON {table} USING gin (({expression}) gin_trgm_ops)")


def downgrade():
    if op.get_bind().dialect.name != "postgresql":
        return
    for name, _table, _expression in TRIGRAM_INDEXES:
        op.execute(f"DROP INDEX IF EXISTS {name}")
