"""audit chain heads: one row per clinic's chain, taken with an UPDATE before each append

Appending to the audit chain read the newest event's hash outside any lock on SQLite, so two requests
auditing at once could both extend the chain from the same event (a fork `flask audit verify` reports as
tampering). Each chain now has a head row that an appender locks first (a row lock on PostgreSQL, the
write lock on SQLite), replacing PostgreSQL's advisory lock. The rows start from each chain's newest event.

Revision ID: b41c7e2a9d10
Revises: 9a946e33a3d8
Create Date: 2026-12-01 22:30:00.000000

"""
from alembic import op
import sqlalchemy as sa


revision = 'b41c7e2a9d10'
down_revision = '9a946e33a3d8'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table(
        'audit_chain_heads',
        sa.Column('chain_key', sa.Integer(), autoincrement=False, nullable=False),
        sa.Column('hash', sa.String(length=64), nullable=False),
        sa.Column('last_event_id', sa.Integer(), nullable=True),
        sa.Column('events', sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint('chain_key', name=op.f('pk_audit_chain_heads')),
    )
    op.execute(
        "INSERT INTO audit_chain_heads (chain_key, hash, last_event_id, events) "
        "SELECT COALESCE(a.tenant_id, 0), a.hash, a.id, counts.n FROM audit_log a "
        "JOIN (SELECT COALESCE(tenant_id, 0) AS chain_key, MAX(id) AS last_id, COUNT(*) AS n "
        "      FROM audit_log GROUP BY COALESCE(tenant_id, 0)) counts ON counts.last_id = a.id"
    )


def downgrade():
    op.drop_table('audit_chain_heads')
