"""The demo's storage lifecycle: Lakeside archives later than Riverside (which keeps the defaults), so the
lifecycle page and `flask storage lifecycle` show two clinics' rules that differ; then the archive tags."""

from __future__ import annotations

from ..accounts.models import Tenant
from ..extensions import db
from ..storage_cost.lifecycle import lifecycle_settings
from ..storage_cost.tags import retag_clinic

# slug: (days to GLACIER, days to DEEP_ARCHIVE, days a file counts as recently opened)
DEMO_SETTINGS = {"lakeside": (120, 300, 30)}


def seed(tenants: list[Tenant]) -> None:
    """Set the demo clinics' settings (only where none are saved) and tag their files; idempotent."""
    for tenant in tenants:
        wanted = DEMO_SETTINGS.get(tenant.slug)
        settings = lifecycle_settings(tenant.id)
        if wanted and settings.id is None:
            settings.glacier_days, settings.deep_archive_days, settings.recent_days = wanted
            db.session.add(settings)
    db.session.commit()
    for tenant in tenants:
        retag_clinic(tenant.id)
