"""The portal report: patients invited, registered and active; counts per week from the events and tasks;
the median first reply in clinic hours against the message target."""

from __future__ import annotations

from datetime import datetime, timedelta

import time_machine

from healthcrm.accounts.models import AccountToken, UserSession
from healthcrm.care.report import portal_report
from healthcrm.extensions import db
from healthcrm.portal.models import PortalEvent
from tests.factories import make_patient, make_portal_user

# Thursday 12 March 2026, 12:00 in New York (EDT).
NOW = datetime(2026, 3, 12, 16, 0)


def add_event(clinic, kind: str, at: datetime, thread: int) -> None:
    db.session.add(
        PortalEvent(
            tenant_id=clinic.tenant.id,
            patient_id=clinic.patient.id,
            kind=kind,
            subject_type="thread",
            subject_id=thread,
            payload={},
            created_at=at,
            handled_at=at,
        )
    )


def test_the_report_counts_and_the_median_first_reply(clinic, signed_in):
    with time_machine.travel(NOW, tick=False):
        invited_only = make_portal_user(make_patient(clinic.tenant), password=None)
        for user in (invited_only, clinic.portal_user):
            db.session.add(
                AccountToken(
                    tenant_id=clinic.tenant.id,
                    user_id=user.id,
                    purpose="invite",
                    token_hash=f"h{user.id}",
                    expires_at=NOW + timedelta(days=7),
                )
            )
        db.session.add(
            UserSession(
                tenant_id=clinic.tenant.id,
                user_id=clinic.portal_user.id,
                token_hash="s1",
                last_seen_at=NOW - timedelta(days=2),
            )
        )
        # Thread 1: sent Tuesday 10 March 16:00 EDT, answered Wednesday 09:00 EDT: 2 clinic hours.
        add_event(clinic, "message.sent", datetime(2026, 3, 10, 20, 0), 1)
        add_event(clinic, "message.sent", datetime(2026, 3, 10, 20, 30), 1)
        add_event(clinic, "message.replied", datetime(2026, 3, 11, 13, 0), 1)
        # Thread 2: answered after 10 clinic hours (over the target of 8).
        add_event(clinic, "message.sent", datetime(2026, 3, 9, 13, 0), 2)
        add_event(clinic, "message.replied", datetime(2026, 3, 10, 14, 0), 2)
        # Thread 3: not answered; thread 4: answered, 6 h.
        add_event(clinic, "message.sent", datetime(2026, 3, 12, 13, 0), 3)
        add_event(clinic, "message.sent", datetime(2026, 3, 2, 13, 0), 4)
        add_event(clinic, "message.replied", datetime(2026, 3, 2, 19, 0), 4)
        add_event(clinic, "refill.requested", datetime(2026, 3, 11, 13, 0), 5)
        db.session.commit()
        clinic.task()
        report = portal_report(clinic.actor(clinic.admin))

    assert (report.invited, report.registered, report.active) == (2, 1, 1)
    this_week = report.weeks[-1]
    assert this_week.starts.isoformat() == "2026-03-09"
    # (the task comes from one more "message.sent" event, with no thread of its own reply)
    assert (this_week.messages, this_week.replies, this_week.refills, this_week.tasks) == (5, 2, 1, 1)
    assert (report.weeks[-2].messages, report.weeks[-2].replies) == (1, 1)
    assert report.replied_threads == 3 and report.unanswered_threads == 1
    assert report.median_reply_minutes == 6 * 60
    assert report.target_minutes == 8 * 60
    assert report.within_target == 2 and report.within_target_percent == 67

    with time_machine.travel(NOW, tick=True):
        page = signed_in(clinic.admin).get("/care/report")
    html = page.get_data(as_text=True)
    assert page.status_code == 200
    assert "Median first reply" in html and "6 h" in html and "67%" in html


def test_the_report_is_for_admins(clinic, signed_in):
    assert signed_in(clinic.coach).get("/care/report").status_code == 403
