"""The demo's profile activity: a demo patient in each clinic has a pending name change, with its event."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select

from healthcrm.demo.data import seed_demo
from healthcrm.extensions import db
from healthcrm.portal.models import PortalEvent
from healthcrm.portal.profile.models import PENDING, ProfileChangeRequest
from healthcrm.tenant_scope import all_tenants


@pytest.mark.demo_seeded
def test_the_demo_has_a_pending_name_change(app):
    seed_demo(None)
    with all_tenants("test"):
        requests = db.session.scalars(select(ProfileChangeRequest)).all()
        events = db.session.scalar(
            select(func.count())
            .select_from(PortalEvent)
            .where(PortalEvent.kind == "profile.change_requested")
        )
    assert requests and all(r.status == PENDING and "last_name" in r.changes for r in requests)
    assert len({r.tenant_id for r in requests}) == len(requests) == events
