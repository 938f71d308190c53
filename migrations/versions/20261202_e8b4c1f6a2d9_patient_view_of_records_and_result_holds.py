"""what the patient sees of their records: a summary for the patient and the notes' visibility on each
record; a hold of one lab result (until a date, with a reason, by whom, released early); the clinic's
longest hold

Revision ID: e8b4c1f6a2d9
Revises: 3e9a7c1d5b20
Create Date: 2026-12-02 07:20:00

"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = 'e8b4c1f6a2d9'
down_revision = '3e9a7c1d5b20'
branch_labels = None
depends_on = None


def upgrade():
    # Plain ADD COLUMN on every database: no rebuild of tables others point at.
    op.add_column('medical_records', sa.Column('patient_summary', sa.Text(), nullable=True))
    op.add_column(
        'medical_records',
        sa.Column('notes_visible_to_patient', sa.Boolean(), server_default=sa.false(), nullable=False),
    )
    op.add_column('lab_results', sa.Column('hold_until', sa.Date(), nullable=True))
    op.add_column('lab_results', sa.Column('hold_reason', sa.String(length=500), nullable=True))
    if op.get_bind().dialect.name == "sqlite":
        # SQLite adds a column with its REFERENCES in place (a batch rebuild would drop a table others
        # point at); Alembic's add_column would try a separate ALTER for the key, which SQLite lacks.
        op.execute("ALTER TABLE lab_results ADD COLUMN held_by_id INTEGER REFERENCES users (id)")
    else:
        op.add_column('lab_results', sa.Column('held_by_id', sa.Integer(), nullable=True))
        op.create_foreign_key('fk_lab_results_held_by_id', 'lab_results', 'users', ['held_by_id'], ['id'])
    op.add_column('lab_results', sa.Column('held_at', sa.DateTime(), nullable=True))
    op.add_column('lab_results', sa.Column('hold_released_at', sa.DateTime(), nullable=True))
    op.add_column(
        'tenants', sa.Column('result_hold_max_days', sa.Integer(), server_default='30', nullable=False)
    )


def _drop(table, column):
    if op.get_bind().dialect.name == "sqlite":
        # Native DROP COLUMN (SQLite 3.35+): a batch rebuild would drop a table others point at.
        op.execute(f"ALTER TABLE {table} DROP COLUMN {column}")
    else:
        op.drop_column(table, column)


def downgrade():
    _drop('tenants', 'result_hold_max_days')
    if op.get_bind().dialect.name != "sqlite":
        op.drop_constraint('fk_lab_results_held_by_id', 'lab_results', type_='foreignkey')
    for column in ('hold_released_at', 'held_at', 'held_by_id', 'hold_reason', 'hold_until'):
        _drop('lab_results', column)
    for column in ('notes_visible_to_patient', 'patient_summary'):
        _drop('medical_records', column)
