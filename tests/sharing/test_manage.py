"""Making and managing share links from the portal (the patient) and the patient page (staff for them):
links shown once and emailed, their tokens stored nowhere, bad input refused with nothing made, the
actions on a link, who may do what, the admins' overview and the patient's notifications."""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, timedelta
from email.parser import BytesParser
from email.policy import default as default_policy

import pytest
import time_machine
from sqlalchemy import JSON, String, Text, select

from healthcrm.accounts.models import Tenant
from healthcrm.audit.models import AuditEvent
from healthcrm.audit.services import Actor
from healthcrm.clock import clinic_today, local_to_utc, utc_to_local, utcnow
from healthcrm.extensions import db
from healthcrm.records.models import MedicalRecord
from healthcrm.sharing import services
from healthcrm.sharing.models import Notification, ShareEvent, ShareLink, ShareVisit
from healthcrm.sharing.overview import sharing_overview
from tests.factories import login, make_patient, make_portal_user, make_tenant, make_user
from tests.sharing.factories import make_share, make_shared_patient

HX = {"HX-Request": "true"}
LINK = re.compile(r"/s/([A-Za-z0-9_-]{40,})")
PASSCODE = "river-stone-42"
ZONE = "America/Chicago"  # the factories' clinics


def _clinic_day(share) -> date:
    """The clinic-calendar day a share ends on (it ends at the last second of that day, clinic time)."""
    zone = db.session.get(Tenant, share.tenant_id).timezone
    return utc_to_local(share.expires_at, zone).date()


@pytest.fixture
def clinic(app):
    tenant = make_tenant("Lakeside Liver Clinic")
    doctor = make_user(tenant, "doctor", full_name="Dr. Sam Okafor")
    patient = make_shared_patient(tenant, doctor)
    portal = make_portal_user(patient)
    records = list(
        db.session.scalars(
            select(MedicalRecord)
            .where(MedicalRecord.patient_id == patient.id)
            .order_by(MedicalRecord.visit_at)
        )
    )
    finalized = [record for record in records if record.is_finalized]
    draft = next(record for record in records if not record.is_finalized)
    return {
        "tenant": tenant,
        "doctor": doctor,
        "patient": patient,
        "portal": portal,
        "finalized": finalized,
        "draft": draft,
    }


def _form(**changes) -> dict:
    data = {
        "recipients-0-name": "Dr. Ana Ruiz",
        "recipients-0-email": "ana.ruiz@hospital.example.com",
        "scope": "all",
        "days": "30",
        "message": "For my appointment on Friday.",
    }
    data.update(changes)
    return {key: value for key, value in data.items() if value is not None}


def _shares() -> list[ShareLink]:
    return list(db.session.scalars(select(ShareLink).order_by(ShareLink.id)))


def _actions(action: str) -> list[AuditEvent]:
    return list(db.session.scalars(select(AuditEvent).where(AuditEvent.action == action)))


def _emails(outbox_dir) -> list:
    return [
        BytesParser(policy=default_policy).parsebytes(path.read_bytes())
        for path in sorted(outbox_dir.glob("*.eml"))
    ]


def _emailed_tokens(outbox_dir, to: str) -> list[str]:
    found = []
    for message in _emails(outbox_dir):
        if message["To"] == to:
            found += LINK.findall(message.get_body(preferencelist=("plain",)).get_content())
    return found


def _text_in_database() -> str:
    """Every text value of every table, one long string to search."""
    values = []
    for table in db.metadata.sorted_tables:
        columns = [column for column in table.columns if isinstance(column.type, String | Text | JSON)]
        if not columns:
            continue
        for row in db.session.execute(select(*columns)):
            values.extend(str(value) for value in row if value is not None)
    return "\n".join(values)


# --- making links ----------------------------------------------------------------------------------------


def test_the_form_is_a_page_and_an_htmx_panel(client, clinic):
    login(client, clinic["portal"].email)
    page = client.get("/portal/shares/new")
    assert page.status_code == 200
    html = page.get_data(as_text=True)
    assert "<html" in html and "Share my records" in html
    # The patient's finalized visits are offered with date, complaint and primary diagnosis; drafts are not.
    assert "12 Jan 2026 · Fatigue and itching · K74.60 Unspecified cirrhosis of liver" in html
    assert "Draft, never shared" not in html
    panel = client.get("/portal/shares/new", headers=HX)
    assert panel.status_code == 200
    assert "<html" not in panel.get_data(as_text=True)
    assert 'id="share-form"' in panel.get_data(as_text=True)
    assert "Vary" in panel.headers and "HX-Request" in panel.headers["Vary"]


def test_a_patient_shares_with_two_recipients_at_once(client, clinic, drain_jobs, outbox_dir):
    first, second = clinic["finalized"]
    login(client, clinic["portal"].email)
    answer = client.post(
        "/portal/shares/new",
        data=_form(
            **{"recipients-1-name": "Dr. Ben Carter", "recipients-1-email": "ben.carter@clinic.example.com"},
            scope="records",
            scope_record_ids=[str(first.id), str(second.id)],
            passcode=PASSCODE,
            verify_email="y",
            max_opens="5",
        ),
        headers=HX,
    )
    drain_jobs()
    assert answer.status_code == 200
    assert answer.headers["HX-Trigger"] == "shares-changed"
    html = answer.get_data(as_text=True)
    shown = list(dict.fromkeys(LINK.findall(html)))
    assert len(shown) == 2 and shown[0] != shown[1]
    assert html.count('src="data:image/svg+xml') == 2
    assert html.count("data-copy-from=") == 2
    assert "Their own link is being emailed to ana.ruiz@hospital.example.com" in html

    ana, ben = _shares()
    assert (ana.recipient_name, ben.recipient_name) == ("Dr. Ana Ruiz", "Dr. Ben Carter")
    for share in (ana, ben):
        assert share.scope_record_ids == sorted([first.id, second.id])
        assert share.verify_email and share.passcode_hash and share.max_opens == 5
        assert not share.allow_download and not share.created_by_staff
    # Each shown link opens its own share.
    assert {services.resolve(token).id for token in shown} == {ana.id, ben.id}

    # One email per recipient, each with its own fresh token (not the one shown).
    emailed_ana = _emailed_tokens(outbox_dir, "ana.ruiz@hospital.example.com")
    emailed_ben = _emailed_tokens(outbox_dir, "ben.carter@clinic.example.com")
    assert len(emailed_ana) == 1 and len(emailed_ben) == 1
    assert len(_emails(outbox_dir)) == 2
    assert services.resolve(emailed_ana[0]).id == ana.id
    assert services.resolve(emailed_ben[0]).id == ben.id
    assert not set(shown) & {emailed_ana[0], emailed_ben[0]}

    # No table holds any of the four tokens; the list never shows a link again.
    stored = _text_in_database()
    for token in [*shown, *emailed_ana, *emailed_ben]:
        assert token not in stored
    listing = client.get("/portal/shares").get_data(as_text=True)
    assert "Dr. Ben Carter" in listing and "2 chosen records" in listing
    assert not LINK.search(listing)
    assert len(_actions("share.create")) == 2


def test_pasted_recipients_and_a_plain_post_without_htmx(client, clinic, drain_jobs, outbox_dir):
    login(client, clinic["portal"].email)
    answer = client.post(
        "/portal/shares/new",
        data=_form(
            **{"recipients-0-name": "", "recipients-0-email": ""},
            recipients_text="\n".join(
                ["Dr. Ana Ruiz <ana.ruiz@hospital.example.com>", "", " Ben Carter <ben@clinic.example.com>"]
            ),
            scope="types",
            scope_types=["labs", "allergies"],
            days="date",
            until=(clinic_today(ZONE) + timedelta(days=200)).isoformat(),
            allow_download="y",
            max_downloads="2",
        ),
    )
    drain_jobs()
    assert answer.status_code == 200
    assert "<html" in answer.get_data(as_text=True)
    shares = _shares()
    assert [share.recipient_email for share in shares] == [
        "ana.ruiz@hospital.example.com",
        "ben@clinic.example.com",
    ]
    assert all(share.scope_types == ["allergies", "labs"] and share.allow_download for share in shares)
    assert _clinic_day(shares[0]) == clinic_today(ZONE) + timedelta(days=200)
    assert len(_emails(outbox_dir)) == 2


def test_a_short_passcode_makes_nothing_and_says_why(client, clinic, outbox_dir):
    login(client, clinic["portal"].email)
    answer = client.post(
        "/portal/shares/new",
        data=_form(
            **{"recipients-1-name": "Dr. Ben Carter", "recipients-1-email": "ben@clinic.example.com"},
            passcode="12345",
        ),
        headers=HX,
    )
    assert answer.status_code == 422
    html = answer.get_data(as_text=True)
    assert 'id="passcode-error"' in html
    assert "A passcode has at least 6 characters." in html
    # What was typed stays (but never the passcode).
    assert "Dr. Ben Carter" in html and "12345" not in html
    assert _shares() == []
    assert list(outbox_dir.glob("*.eml")) == []


@pytest.mark.parametrize(
    ("changes", "field", "message"),
    [
        ({"recipients-0-email": "not-an-email"}, "recipients", "is not an email address"),
        ({"recipients-0-name": ""}, "recipients", "Enter each recipient"),
        ({"recipients_text": "just a name"}, "recipients", "as Name &lt;email&gt;"),
        ({"scope": "types"}, "scope_types", "Choose at least one kind of record."),
        ({"days": "date", "until": ""}, "until", "Choose the date the link stops working."),
        ({"days": "date", "until": "2999-01-01"}, "until", "at most 365 days"),
        ({"max_opens": "0"}, "max_opens", "A limit is between 1 and 1,000."),
        ({"days": "12"}, "days", "Not a valid choice"),
    ],
)
def test_bad_input_is_refused_next_to_its_field(client, clinic, changes, field, message):
    login(client, clinic["portal"].email)
    answer = client.post("/portal/shares/new", data=_form(**changes), headers=HX)
    assert answer.status_code == 422
    html = answer.get_data(as_text=True)
    assert f'id="{field}-error"' in html
    assert message in html
    assert _shares() == []


def test_sharing_by_records_accepts_only_the_patients_own_finalized_records(client, clinic):
    other_patient = make_shared_patient(clinic["tenant"], clinic["doctor"])
    other_clinic = make_tenant("Elsewhere")
    elsewhere = make_shared_patient(other_clinic, make_user(other_clinic, "doctor"))
    theirs = db.session.scalar(select(MedicalRecord.id).where(MedicalRecord.patient_id == other_patient.id))
    abroad = db.session.scalar(select(MedicalRecord.id).where(MedicalRecord.patient_id == elsewhere.id))
    own = clinic["finalized"][0].id
    login(client, clinic["portal"].email)
    for ids in ([own, theirs], [abroad], [clinic["draft"].id], [], ["x"]):
        answer = client.post(
            "/portal/shares/new",
            data=_form(scope="records", scope_record_ids=[str(i) for i in ids]),
            headers=HX,
        )
        assert answer.status_code == 422, ids
        assert 'id="scope_record_ids-error"' in answer.get_data(as_text=True)
    assert _shares() == []


def test_add_another_recipient_with_and_without_javascript(client, clinic):
    login(client, clinic["portal"].email)
    row = client.get("/shares/recipient-row/1", headers=HX)
    assert row.status_code == 200
    html = row.get_data(as_text=True)
    assert 'name="recipients-1-email"' in html
    assert 'data-hx-swap-oob="true"' in html and "/shares/recipient-row/2" in html
    assert client.get("/shares/recipient-row/10", headers=HX).status_code == 404
    answer = client.post("/portal/shares/new", data=_form(add_row="recipients"))
    assert answer.status_code == 200
    html = answer.get_data(as_text=True)
    assert 'name="recipients-1-name"' in html and "Dr. Ana Ruiz" in html
    assert _shares() == []


# --- managing links --------------------------------------------------------------------------------------


@pytest.fixture
def shared(client, clinic, drain_jobs):
    """The clinic's patient, signed in, with one link made through the form (and emailed)."""
    login(client, clinic["portal"].email)
    answer = client.post("/portal/shares/new", data=_form(passcode=PASSCODE), headers=HX)
    assert answer.status_code == 200
    drain_jobs()
    return {**clinic, "share": _shares()[0], "shown": LINK.findall(answer.get_data(as_text=True))[0]}


def test_the_list_shows_each_link_and_is_audited(client, shared):
    share = shared["share"]
    page = client.get("/portal/shares")
    html = page.get_data(as_text=True)
    assert page.status_code == 200
    assert "Dr. Ana Ruiz" in html and "ana.ruiz@hospital.example.com" in html
    assert "The complete health record" in html and "passcode" in html
    assert "Active" in html and "Never" in html and "Not allowed" in html
    assert f'id="share-{share.id}"' in html
    fragment = client.get("/portal/shares", headers=HX).get_data(as_text=True)
    assert "<html" not in fragment and 'id="shares"' in fragment
    assert _actions("share.list")


def test_revoke_answers_with_the_card_and_the_link_stops_at_once(client, shared):
    share = shared["share"]
    answer = client.post(f"/shares/{share.id}/revoke", data={}, headers=HX)
    assert answer.status_code == 200
    html = answer.get_data(as_text=True)
    assert "<html" not in html and f'id="share-{share.id}"' in html
    assert "Revoked" in html
    db.session.refresh(share)
    assert share.revoked_at is not None
    assert services.resolve(shared["shown"]) is None
    assert [event.resource_id for event in _actions("share.revoke")] == [str(share.id)]


def test_extend_within_a_year_of_sharing(client, shared):
    share = shared["share"]
    later = clinic_today(ZONE) + timedelta(days=120)
    answer = client.post(f"/shares/{share.id}/extend", data={"until": later.isoformat()})
    assert answer.status_code == 303
    assert answer.headers["Location"].endswith(f"/portal/shares#share-{share.id}")
    db.session.refresh(share)
    assert _clinic_day(share) == later
    assert _actions("share.extend")

    too_late = share.created_at.date() + timedelta(days=366)
    refused = client.post(f"/shares/{share.id}/extend", data={"until": too_late.isoformat()}, headers=HX)
    assert refused.status_code == 422
    assert f'id="share-{share.id}-until-error"' in refused.get_data(as_text=True)
    db.session.refresh(share)
    assert _clinic_day(share) == later
    # Without JavaScript the refusal is the whole list, with the reason on the card.
    plain = client.post(f"/shares/{share.id}/extend", data={"until": "nonsense"})
    assert plain.status_code == 422 and "<html" in plain.get_data(as_text=True)


def test_change_and_remove_the_passcode(client, shared):
    share = shared["share"]
    old_hash = share.passcode_hash
    short = client.post(f"/shares/{share.id}/passcode", data={"passcode": "abc"}, headers=HX)
    assert short.status_code == 422
    assert "A passcode has at least 6 characters." in short.get_data(as_text=True)
    empty = client.post(f"/shares/{share.id}/passcode", data={"passcode": ""}, headers=HX)
    assert empty.status_code == 422
    changed = client.post(f"/shares/{share.id}/passcode", data={"passcode": "new-passcode-9"}, headers=HX)
    assert changed.status_code == 200
    db.session.refresh(share)
    assert share.passcode_hash and share.passcode_hash != old_hash
    removed = client.post(f"/shares/{share.id}/passcode", data={"passcode": "", "remove": "y"}, headers=HX)
    assert removed.status_code == 200 and "Passcode removed." in removed.get_data(as_text=True)
    db.session.refresh(share)
    assert share.passcode_hash is None
    assert len(_actions("share.passcode")) == 2
    # The link stays the same.
    assert services.resolve(shared["shown"]).id == share.id


def test_send_again_emails_a_fresh_link_and_the_old_one_stops(client, shared, drain_jobs, outbox_dir):
    share = shared["share"]
    [first] = _emailed_tokens(outbox_dir, share.recipient_email)
    answer = client.post(f"/shares/{share.id}/send", data={}, headers=HX)
    drain_jobs()
    assert answer.status_code == 200
    assert "A new link was emailed" in answer.get_data(as_text=True)
    tokens = _emailed_tokens(outbox_dir, share.recipient_email)
    assert len(tokens) == 2
    second = next(token for token in tokens if token != first)
    assert services.resolve(first) is None
    assert services.resolve(second).id == share.id
    assert services.resolve(shared["shown"]).id == share.id  # the link shown at creation still works
    assert _actions("share.resend")
    assert second not in _text_in_database()

    client.post(f"/shares/{share.id}/revoke", data={})
    refused = client.post(f"/shares/{share.id}/send", data={}, headers=HX)
    assert refused.status_code == 422
    assert "no longer works" in refused.get_data(as_text=True)


def test_the_access_log_shows_time_ip_and_browser(client, shared):
    share = shared["share"]
    db.session.add(
        ShareEvent(
            tenant_id=share.tenant_id, share_id=share.id, kind="passcode_failed", detail="1 in a row",
            ip="203.0.113.7", occurred_at=datetime(2026, 11, 20, 15, 4, 5),
            user_agent="Mozilla/5.0 (iPhone; CPU iPhone OS 17_0 like Mac OS X) AppleWebKit/605.1.15 "
            "(KHTML, like Gecko) Version/17.0 Mobile/15E148 Safari/604.1",
        )
    )  # fmt: skip
    db.session.commit()
    for headers in ({}, HX):
        answer = client.get(f"/shares/{share.id}", headers=headers)
        html = answer.get_data(as_text=True)
        assert answer.status_code == 200
        assert "Wrong passcode" in html and "203.0.113.7" in html and "Safari on iPhone" in html
        assert "20 Nov 2026, 09:04 CST" in html and "09:04:05" in html  # clinic time (America/Chicago)
    assert len(_actions("share.log")) == 2


def test_another_patients_share_answers_404(client, shared):
    other = make_patient(shared["tenant"], first_name="Other")
    theirs = make_share(other, recipient_name="Dr. Elsewhere")
    abroad_tenant = make_tenant("Far away")
    abroad = make_share(make_patient(abroad_tenant), recipient_name="Dr. Abroad")
    for share in (theirs, abroad):
        assert client.get(f"/shares/{share.id}").status_code == 404
        for action, data in (
            ("revoke", {}),
            ("extend", {"until": (clinic_today(ZONE) + timedelta(days=40)).isoformat()}),
            ("passcode", {"passcode": "another-one"}),
            ("send", {}),
        ):
            assert client.post(f"/shares/{share.id}/{action}", data=data).status_code == 404, action
        db.session.refresh(share)
        assert share.revoked_at is None and share.passcode_hash is None
    assert "Dr. Elsewhere" not in client.get("/portal/shares").get_data(as_text=True)


# --- staff on the patient's behalf -----------------------------------------------------------------------


@pytest.mark.parametrize("role", ["admin", "doctor", "nurse", "coach"])
def test_staff_share_on_the_patients_behalf(client, clinic, drain_jobs, outbox_dir, role):
    staff = make_user(clinic["tenant"], role, full_name=f"Robin {role.title()}")
    patient = clinic["patient"]
    login(client, staff.email)
    assert "Share for the patient" in client.get(f"/patients/{patient.id}").get_data(as_text=True)
    assert client.get(f"/patients/{patient.id}/shares/new").status_code == 200
    answer = client.post(f"/patients/{patient.id}/shares/new", data=_form(), headers=HX)
    drain_jobs()
    assert answer.status_code == 200
    assert len(set(LINK.findall(answer.get_data(as_text=True)))) == 1
    [share] = _shares()
    assert share.created_by_staff and share.created_by_id == staff.id
    listing = client.get(f"/patients/{patient.id}/shares").get_data(as_text=True)
    assert f"by Robin {role.title()} for the patient" in listing
    assert client.post(f"/shares/{share.id}/revoke", data={}, headers=HX).status_code == 200
    assert len(_emails(outbox_dir)) == 1


def test_front_desk_has_no_access(client, clinic):
    share = make_share(clinic["patient"])
    desk = make_user(clinic["tenant"], "front_desk")
    login(client, desk.email)
    patient_id = clinic["patient"].id
    assert client.get(f"/patients/{patient_id}/shares").status_code == 403
    assert client.get(f"/patients/{patient_id}/shares/new").status_code == 403
    assert client.post(f"/patients/{patient_id}/shares/new", data=_form()).status_code == 403
    assert client.get(f"/shares/{share.id}").status_code == 403
    assert client.post(f"/shares/{share.id}/revoke", data={}).status_code == 403
    assert "Shared records" not in client.get(f"/patients/{patient_id}").get_data(as_text=True)
    assert len(_shares()) == 1 and _shares()[0].revoked_at is None


def test_staff_of_another_clinic_get_404(client, clinic):
    share = make_share(clinic["patient"])
    other = make_tenant("Other")
    doctor = make_user(other, "doctor")
    login(client, doctor.email)
    assert client.get(f"/patients/{clinic['patient'].id}/shares").status_code == 404
    assert client.post(f"/patients/{clinic['patient'].id}/shares/new", data=_form()).status_code == 404
    assert client.get(f"/shares/{share.id}").status_code == 404
    assert client.post(f"/shares/{share.id}/revoke", data={}).status_code == 404


# --- the admins' overview --------------------------------------------------------------------------------


def _monday(day: date) -> date:
    return day - timedelta(days=day.weekday())


def test_the_overview_counts_per_week_and_lists_the_open_links(client, clinic):
    patient = clinic["patient"]
    now = utcnow().replace(microsecond=0)
    # Weeks are the clinic's (America/Chicago): noon on the Wednesday three weeks before this one, there.
    local_monday = _monday(utc_to_local(now, ZONE).date())
    three_weeks_ago = local_to_utc(
        datetime.combine(local_monday - timedelta(weeks=3, days=-2), datetime.min.time())
        + timedelta(hours=12),
        ZONE,
    )
    opened = three_weeks_ago + timedelta(hours=1)
    old = make_share(
        patient, created_at=three_weeks_ago, first_opened_at=opened, expires_at=opened + timedelta(days=1)
    )
    revoked = three_weeks_ago + timedelta(hours=2)
    make_share(
        patient, created_at=three_weeks_ago, revoked_at=revoked, expires_at=revoked + timedelta(days=7)
    )
    # This week's links were made a few minutes ago, but never before the clinic's Monday midnight (a run
    # just after it would count them last week).
    week_start = local_to_utc(datetime.combine(local_monday, datetime.min.time()), ZONE)
    minutes = [max(week_start, now - timedelta(minutes=n)) for n in range(6)]
    visiting = make_share(
        patient, recipient_name="Dr. Visiting", created_at=minutes[5], first_opened_at=minutes[4],
        last_access_at=now - timedelta(hours=1),
    )  # fmt: skip
    db.session.add(
        ShareVisit(
            tenant_id=visiting.tenant_id, share_id=visiting.id, cookie_hash="a" * 64, opened=True,
            passcode_ok=True, email_ok=True, expires_at=now + timedelta(hours=2),
        )
    )  # fmt: skip
    make_share(patient, recipient_name="Dr. Recent", created_at=minutes[3], last_access_at=minutes[2])
    make_share(
        patient, recipient_name="Dr. Idle", created_at=minutes[3], last_access_at=now - timedelta(minutes=30)
    )
    make_share(
        patient, recipient_name="Dr. Gone", created_at=minutes[3], last_access_at=minutes[1], revoked_at=now
    )
    # Another clinic's links count nowhere.
    elsewhere = make_tenant("Elsewhere")
    make_share(make_patient(elsewhere), recipient_name="Dr. Abroad", created_at=now, last_access_at=now)
    admin = make_user(clinic["tenant"], "admin")

    report = sharing_overview(Actor(tenant_id=admin.tenant_id, user_id=admin.id, role="admin"))
    assert len(report.weeks) == 12
    this_week, earlier = report.weeks[-1], report.weeks[-4]
    assert (this_week.created, this_week.opened, this_week.expired, this_week.revoked) == (4, 1, 0, 1)
    assert (earlier.created, earlier.opened, earlier.expired, earlier.revoked) == (2, 1, 1, 1)
    assert sum(week.created for week in report.weeks) == 6
    assert [share.recipient_name for share in report.open_now] == ["Dr. Recent", "Dr. Visiting"]
    assert old not in report.open_now

    login(client, admin.email)
    page = client.get("/admin/sharing")
    html = page.get_data(as_text=True)
    assert page.status_code == 200
    assert this_week.label in html and "Dr. Visiting" in html and patient.full_name in html
    assert "Dr. Abroad" not in html and "Dr. Idle" not in html
    assert _actions("share.overview")


@pytest.mark.parametrize("role", ["doctor", "nurse", "front_desk", "patient"])
def test_only_admins_see_the_overview(client, clinic, role):
    user = clinic["portal"] if role == "patient" else make_user(clinic["tenant"], role)
    login(client, user.email)
    assert client.get("/admin/sharing").status_code == 403


# --- notifications ---------------------------------------------------------------------------------------


def test_the_portal_home_lists_unread_notices_until_read(client, clinic):
    portal = clinic["portal"]
    other = make_portal_user(make_patient(clinic["tenant"]))
    for text in (
        "Dr. Ana Ruiz opened the records you shared.",
        "The link you shared with Dr. Ben was paused.",
    ):
        db.session.add(Notification(tenant_id=portal.tenant_id, user_id=portal.id, text=text))
    db.session.add(Notification(tenant_id=other.tenant_id, user_id=other.id, text="Someone else's notice"))
    db.session.commit()
    login(client, portal.email)
    home = client.get("/portal").get_data(as_text=True)
    assert "Dr. Ana Ruiz opened the records you shared." in home and "2 new" in home
    assert "Someone else" not in home
    first = db.session.scalar(select(Notification).where(Notification.text.startswith("Dr. Ana")))
    answer = client.post(f"/portal/notifications/{first.id}/mark-read", data={"back": "home"}, headers=HX)
    assert answer.status_code == 200
    html = answer.get_data(as_text=True)
    assert "<html" not in html and "Dr. Ana Ruiz" not in html and "paused" in html
    # Another user's notice cannot be marked from here.
    mine_only = db.session.scalar(select(Notification).where(Notification.user_id == other.id))
    client.post(f"/portal/notifications/{mine_only.id}/mark-read", data={"back": "home"})
    db.session.refresh(mine_only)
    assert mine_only.read_at is None
    plain = client.post("/portal/notifications/mark-all-read", data={"back": "home"})
    assert plain.status_code == 303 and plain.headers["Location"].endswith("/portal")
    # The notices card is gone (the top bar's bell, a link to every notification, stays).
    assert 'id="notifications-title"' not in client.get("/portal").get_data(as_text=True)


def test_the_end_date_is_counted_from_the_clinics_day_not_utcs(client, clinic):
    # 19:00 on 1 December in Chicago is already 2 December in UTC: "tomorrow" is 2 December for the clinic.
    with time_machine.travel(datetime(2026, 12, 2, 1, 0, tzinfo=UTC), tick=False):
        login(client, clinic["portal"].email)
        page = client.get("/portal/shares/new").get_data(as_text=True)
        assert 'min="2026-12-02"' in page
        answer = client.post("/portal/shares/new", data=_form(days="date", until="2026-12-02"), headers=HX)
        assert answer.status_code == 200, answer.get_data(as_text=True)[:500]
        [share] = _shares()
        assert _clinic_day(share) == date(2026, 12, 2)
        # Today (the clinic's) is refused with its reason.
        today = client.post("/portal/shares/new", data=_form(days="date", until="2026-12-01"), headers=HX)
        assert today.status_code == 422 and "Choose a date after today." in today.get_data(as_text=True)


def test_an_expired_link_is_not_extended_and_nothing_changes(client, shared, app):
    share = shared["share"]
    expired_at = share.expires_at
    with time_machine.travel(share.expires_at.replace(tzinfo=UTC) + timedelta(days=2), tick=False):
        services.sweep_expired()
        login(client, shared["portal"].email)
        later = services.share_today(share.tenant_id) + timedelta(days=10)
        refused = client.post(f"/shares/{share.id}/extend", data={"until": later.isoformat()}, headers=HX)
        assert refused.status_code == 422
        assert "This link has expired and can no longer open; share again instead." in refused.get_data(
            as_text=True
        )
        db.session.refresh(share)
        assert share.expires_at == expired_at and not _actions("share.extend")
        assert services.resolve(shared["shown"]) is None


@pytest.mark.parametrize("headers", [{"Sec-Fetch-Site": "cross-site"}, {"Origin": "https://evil.example"}])
def test_a_cross_site_post_without_a_token_is_refused_as_cross_site_before_the_token_check(
    client, clinic, headers
):
    share = make_share(clinic["patient"])
    login(client, clinic["portal"].email)
    answer = client.post(f"/shares/{share.id}/revoke", data={}, csrf=False, headers=headers)
    assert answer.status_code == 403
    assert "came from another website" in answer.get_data(as_text=True)
    db.session.refresh(share)
    assert share.revoked_at is None


def test_every_fault_of_the_share_form_is_shown_at_once_at_its_field_and_in_a_summary(client, clinic):
    login(client, clinic["portal"].email)
    answer = client.post(
        "/portal/shares/new",
        data=_form(
            **{"recipients-0-name": "", "recipients-0-email": "not-an-email"},
            scope="types",  # and no kind chosen
            passcode="12345",  # the service's rule
            max_opens="many",  # the form's rule
            days="date",  # and no date
        ),
        headers=HX,
    )
    assert answer.status_code == 422
    html = answer.get_data(as_text=True)
    faults = {
        "recipients-0-name": "Enter each recipient&#39;s name.",
        "scope_types-0": "Choose at least one kind of record.",
        "passcode": "A passcode has at least 6 characters.",
        "max_opens": "Not a valid integer value.",
        "until": "Choose the date the link stops working.",
    }
    summary = html[
        html.index('id="share-form-errors"') : html.index("</div>", html.index('id="share-form-errors"'))
    ]
    assert "7 things to fix" in summary  # a word for a number also breaks the limit's range
    assert 'href="#recipients-0-name">not-an-email is not an email address.</a>' in summary
    for target, message in faults.items():
        assert f'<a href="#{target}">{message}</a>' in summary, target
    # Each field points at its own message.
    for name in ("passcode", "max_opens", "until"):
        assert re.search(rf'id="{name}"[^>]*aria-describedby="[^"]*{name}-error', html) or re.search(
            rf'aria-describedby="[^"]*{name}-error[^"]*"[^>]*id="{name}"', html
        ), name
    assert re.search(r'aria-describedby="scope_types-error"[^>]*id="scope_types-0"', html) or re.search(
        r'id="scope_types-0"[^>]*aria-describedby="scope_types-error"', html
    )
    assert 'id="recipients-error"' in html
    assert _shares() == []


def test_the_share_form_and_created_pages_have_an_h1_alone_and_an_h2_inside_the_list(client, clinic):
    login(client, clinic["portal"].email)
    page = client.get("/portal/shares/new").get_data(as_text=True)
    assert '<h1 id="share-form-title">Share my records</h1>' in page
    panel = client.get("/portal/shares/new", headers=HX).get_data(as_text=True)
    assert '<h2 id="share-form-title">' in panel and "<h1" not in panel
    created = client.post("/portal/shares/new", data=_form()).get_data(as_text=True)
    assert '<h1 id="created-title">Your link is ready</h1>' in created


IPHONE = (
    "Mozilla/5.0 (iPhone; CPU iPhone OS 18_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) "
    "Version/18.1 Mobile/15E148 Safari/604.1"
)
WINDOWS = (
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 "
    "Safari/537.36"
)


def _event(share, kind, at, ip, agent, detail=None):
    return ShareEvent(
        tenant_id=share.tenant_id, share_id=share.id, kind=kind, detail=detail, ip=ip, user_agent=agent,
        occurred_at=at,
    )  # fmt: skip


def test_the_access_log_is_grouped_by_visit_newest_first_with_repeats_folded(client, shared):
    share = shared["share"]
    first = datetime(2026, 11, 20, 15, 0)  # 09:00 in Chicago
    second = datetime(2026, 11, 21, 16, 30)
    events = [_event(share, "open", first, "203.0.113.7", IPHONE)]
    events += [
        _event(share, "view", first + timedelta(minutes=1 + i), "203.0.113.7", IPHONE, tab)
        for i, tab in enumerate(["Summary"] * 5 + ["Lab results"] * 10 + ["Files"] * 4)
    ]
    events += [_event(share, "passcode_failed", second, "198.51.100.2", WINDOWS, "1 in a row")]
    events += [_event(share, "open", second + timedelta(minutes=1), "198.51.100.2", WINDOWS)]
    events += [
        _event(
            share, "view", second + timedelta(minutes=2 + i), "198.51.100.2", WINDOWS, f"file scan-{i}.pdf"
        )
        for i in range(13)
    ]
    db.session.add_all(events)
    db.session.commit()
    assert len(events) == 35

    html = client.get(f"/shares/{share.id}").get_data(as_text=True)
    visits = re.findall(r'<tbody class="access-visit".*?</tbody>', html, re.S)
    assert len(visits) == 2
    newest, oldest = visits
    assert "Visit 2 · 21 Nov 2026, 10:30 – 10:44 CST" in newest and "Chrome on Windows" in newest
    assert "Visit 1 · 20 Nov 2026, 09:00 – 09:19 CST" in oldest and "Safari on iPhone" in oldest
    # In each visit, the steps in the order they happened; a run of the same view is one line.
    assert newest.index("Wrong passcode") < newest.index("Opened the link") < newest.index("scan-12.pdf")
    assert oldest.count('<tr class="access-event') == 4
    assert '<span class="muted">Lab results</span> <span class="badge">×10</span>' in oldest
    assert html.count('<tr class="access-event') == 4 + 15


def test_a_browser_back_after_its_visit_lasted_is_a_new_visit(app, shared):
    share = shared["share"]
    start = datetime(2026, 11, 20, 15, 0)
    db.session.add_all(
        [
            _event(share, "open", start, "203.0.113.7", IPHONE),
            _event(share, "view", start + timedelta(hours=3), "203.0.113.7", IPHONE, "Summary"),
            _event(share, "view", start + timedelta(hours=3), "203.0.113.8", IPHONE, "Summary"),
            _event(share, "view", start + timedelta(hours=7, minutes=1), "203.0.113.7", IPHONE, "Summary"),
        ]
    )
    db.session.commit()
    db.session.refresh(share)
    visits = services.access_visits(share)
    assert [len(visit.events) for visit in visits] == [1, 1, 2]
    assert [visit.ip for visit in visits] == ["203.0.113.7", "203.0.113.8", "203.0.113.7"]
    assert not visits[0].opened and visits[2].opened
