"""clinic units and score input age: vitals in the clinic's units (US clinics start with lb, in, °F), and how
old a score's input may be before the score says so (90 days unless the clinic changes it)

Revision ID: b7e3d5a1c8f2
Revises: a9c4e2f7b1d3
Create Date: 2026-12-02 01:50:00

"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = 'b7e3d5a1c8f2'
down_revision = 'a9c4e2f7b1d3'
branch_labels = None
depends_on = None

# healthcrm/records/units.py US_TIME_ZONES as of this revision (a migration does not import app code).
US_TIME_ZONES = (
    "America/Adak", "America/Anchorage", "America/Boise", "America/Chicago", "America/Denver",
    "America/Detroit", "America/Indiana/Indianapolis", "America/Indiana/Knox", "America/Indiana/Marengo",
    "America/Indiana/Petersburg", "America/Indiana/Tell_City", "America/Indiana/Vevay",
    "America/Indiana/Vincennes", "America/Indiana/Winamac", "America/Juneau", "America/Kentucky/Louisville",
    "America/Kentucky/Monticello", "America/Los_Angeles", "America/Menominee", "America/Metlakatla",
    "America/New_York", "America/Nome", "America/North_Dakota/Beulah", "America/North_Dakota/Center",
    "America/North_Dakota/New_Salem", "America/Phoenix", "America/Sitka", "America/Yakutat",
    "Pacific/Honolulu", "US/Alaska", "US/Arizona", "US/Central", "US/Eastern", "US/Hawaii", "US/Mountain",
    "US/Pacific",
)


def upgrade():
    # Plain ADD COLUMN with a default on every database: no table rebuild (users point at tenants).
    op.add_column('tenants', sa.Column('unit_system', sa.String(length=10), server_default='metric', nullable=False))
    op.add_column(
        'tenants', sa.Column('score_input_max_age_days', sa.Integer(), server_default='90', nullable=False)
    )
    tenants = sa.table('tenants', sa.column('timezone', sa.String), sa.column('unit_system', sa.String))
    op.execute(tenants.update().where(tenants.c.timezone.in_(US_TIME_ZONES)).values(unit_system='us'))


def downgrade():
    for column in ('score_input_max_age_days', 'unit_system'):
        if op.get_bind().dialect.name == "sqlite":
            # Native DROP COLUMN (SQLite 3.35+): a batch rebuild would drop a table others point at.
            op.execute(f"ALTER TABLE tenants DROP COLUMN {column}")
        else:
            op.drop_column('tenants', column)
