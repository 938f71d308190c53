"""`flask demo` gives both clinics their phone, address and hours, the default stage rules and open tasks."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from healthcrm.accounts.models import Tenant
from healthcrm.care.models import DONE, CareStageRule, Task
from healthcrm.clock import utcnow
from healthcrm.demo.data import seed_demo
from healthcrm.extensions import db
from healthcrm.tenant_scope import all_tenants


@pytest.mark.icd10_full
def test_both_demo_clinics_get_details_rules_and_tasks(app):
    seed_demo(None)
    now = utcnow()
    with all_tenants("test"):
        tenants = db.session.scalars(select(Tenant)).all()
        assert len(tenants) == 2
        for tenant in tenants:
            assert tenant.phone and tenant.address and tenant.hours
            tasks = db.session.scalars(select(Task).where(Task.tenant_id == tenant.id)).all()
            open_tasks = [task for task in tasks if task.status != DONE]
            assert len(open_tasks) >= 4
            assert any(task.status == "open" and task.due_at < now for task in open_tasks)
            assert any(task.assignee_id for task in open_tasks)
            assert any(task.assignee_id is None and task.pool_roles for task in open_tasks)
            rules = db.session.scalars(
                select(CareStageRule).where(CareStageRule.tenant_id == tenant.id)
            ).all()
            assert {rule.event_kind for rule in rules} >= {"account.registered", "message.replied"}
