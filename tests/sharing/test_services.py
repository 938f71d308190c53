"""The rules a share link keeps, at the service level: hashed tokens, exact counting under parallel
requests, pauses after wrong passcodes, and no way from one clinic's link to another clinic's data."""

from __future__ import annotations

import threading
from datetime import datetime, timedelta

import pytest
from sqlalchemy import inspect, select, text

from healthcrm.audit.services import Actor
from healthcrm.clock import utcnow
from healthcrm.extensions import db
from healthcrm.records.models import FINALIZED, MedicalRecord
from healthcrm.sharing import services
from healthcrm.sharing.content import shared_content
from healthcrm.sharing.models import Notification, ShareEvent, ShareLink, ShareVisit
from tests.concurrency import parallel
from tests.factories import make_patient, make_portal_user, make_tenant, make_user

PASSCODE = "correct-horse"


def _actor(user) -> Actor:
    return Actor(tenant_id=user.tenant_id, user_id=user.id, role=user.role)


@pytest.fixture
def clinic(app):
    tenant = make_tenant()
    doctor = make_user(tenant, "doctor")
    patient = make_patient(tenant, first_name="Liv", last_name="Hepburn")
    portal = make_portal_user(patient)
    record = MedicalRecord(
        tenant_id=tenant.id, patient_id=patient.id, doctor_id=doctor.id, author_id=doctor.id,
        visit_at=datetime(2026, 10, 1, 9), chief_complaint="Yellow eyes", status=FINALIZED,
        finalized_at=datetime(2026, 10, 1, 10), finalized_by_id=doctor.id,
    )  # fmt: skip
    db.session.add(record)
    db.session.commit()
    return {"tenant": tenant, "doctor": doctor, "patient": patient, "portal": portal, "record": record}


def _share(clinic, **changes) -> services.CreatedShare:
    request = services.ShareRequest(recipients=[("Dr. Who", "who@example.org")], **changes)
    return services.create_shares(_actor(clinic["portal"]), clinic["patient"].id, request)[0]


def _notices(clinic) -> list[Notification]:
    return list(db.session.scalars(select(Notification).where(Notification.user_id == clinic["portal"].id)))


def test_the_token_is_stored_nowhere(clinic):
    created = _share(clinic, passcode=PASSCODE)
    token = created.token
    assert len(token) >= 43  # 256 bits in URL-safe base64
    db.session.commit()
    engine = db.engine
    with engine.connect() as connection:
        for table in inspect(engine).get_table_names():
            if table.startswith("record_search"):
                continue
            for row in connection.execute(text(f'SELECT * FROM "{table}"')):  # noqa: S608 - table names from the schema
                assert token not in " ".join(str(value) for value in row), table
    assert services.resolve(token).id == created.share.id


def test_random_tokens_find_nothing(clinic):
    _share(clinic)
    assert all(services.resolve(services.new_token()) is None for _ in range(1000))
    assert services.resolve("") is None and services.resolve("x" * 500) is None


def test_expired_revoked_and_used_up_links_resolve_to_nothing(clinic):
    expired, revoked, used = (_share(clinic, max_opens=1) for _ in range(3))
    expired.share.expires_at = datetime(2020, 1, 1)
    db.session.commit()
    services.revoke(_actor(clinic["portal"]), revoked.share.id)
    visit, _cookie = services.start_visit(used.share)
    assert services.admit(used.share, visit, ip="1.2.3.4", user_agent="test")
    assert [services.resolve(c.token) for c in (expired, revoked, used)] == [None, None, None]


def test_parallel_wrong_passcodes_are_counted_exactly(app, clinic):
    share = _share(clinic, passcode=PASSCODE).share
    share_id = share.id

    def guess(_index: int):
        current = db.session.get(ShareLink, share_id)
        visit, _cookie = services.start_visit(current)
        return services.check_passcode(current, visit, "wrong-guess", ip="5.6.7.8", user_agent="t")

    outcomes = parallel(8, app, guess)
    assert [bool(outcome) for outcome in outcomes] == [False] * 8
    assert sorted(outcome.tries_left for outcome in outcomes) == list(range(2, 10))
    db.session.expire_all()
    assert db.session.get(ShareLink, share_id).failed_passcodes == 8
    failures = db.session.scalars(
        select(ShareEvent).where(ShareEvent.share_id == share_id, ShareEvent.kind == "passcode_failed")
    ).all()
    assert len(failures) == 8


def test_fifty_parallel_wrong_passcodes_check_the_hash_ten_times_and_pause_once(app, clinic, monkeypatch):
    share = _share(clinic, passcode=PASSCODE).share
    share_id = share.id
    db.session.commit()
    hashes, lock = [], threading.Lock()
    checked = services.verify_password

    def counting_verify(stored: str, given: str) -> bool:
        with lock:
            hashes.append(given)
        return checked(stored, given)

    monkeypatch.setattr(services, "verify_password", counting_verify)

    def guess(_index: int):
        current = db.session.get(ShareLink, share_id)
        visit, _cookie = services.start_visit(current)
        return services.check_passcode(current, visit, "wrong-guess", ip="5.6.7.8", user_agent="t")

    outcomes = parallel(50, app, guess)
    assert not any(outcomes)
    assert len(hashes) == services.PAUSE_AFTER_FAILURES
    assert sorted(outcome.tries_left for outcome in outcomes)[-1] == services.PAUSE_AFTER_FAILURES - 1
    db.session.expire_all()
    events = db.session.scalars(select(ShareEvent.kind).where(ShareEvent.share_id == share_id)).all()
    assert events.count("passcode_failed") == services.PAUSE_AFTER_FAILURES
    assert events.count("paused") == 1
    assert services.is_paused(db.session.get(ShareLink, share_id))


def test_ten_wrong_passcodes_in_a_row_pause_the_link_and_tell_the_patient(clinic, time_machine):
    time_machine.move_to(datetime(2026, 11, 23, 12, 0), tick=False)
    share = _share(clinic, passcode=PASSCODE).share
    visit, _cookie = services.start_visit(share)
    for _ in range(9):
        assert not services.check_passcode(share, visit, "nope-nope", ip=None, user_agent=None)
    assert services.check_passcode(share, visit, PASSCODE, ip=None, user_agent=None)  # resets the count
    for _ in range(10):
        services.check_passcode(share, visit, "nope-nope", ip=None, user_agent=None)
    db.session.refresh(share)
    assert services.is_paused(share)
    assert not services.check_passcode(share, visit, PASSCODE, ip=None, user_agent=None)  # paused: refused
    notices = db.session.scalars(
        select(Notification).where(Notification.user_id == clinic["portal"].id)
    ).all()
    assert any("paused" in notice.text for notice in notices)
    time_machine.move_to(datetime(2026, 11, 23, 12, 16), tick=False)
    assert services.resolve(_share(clinic).token) is not None
    assert services.check_passcode(share, visit, PASSCODE, ip=None, user_agent=None)  # usable again


@pytest.mark.parametrize("limit", [1, 3])
def test_a_view_limit_of_n_lets_exactly_n_parallel_opens_through(app, clinic, limit):
    share_id = _share(clinic, max_opens=limit).share.id

    def open_once(_index: int):
        current = db.session.get(ShareLink, share_id)
        visit, _cookie = services.start_visit(current)
        return services.admit(current, visit, ip="9.9.9.9", user_agent="t")

    outcomes = parallel(8, app, open_once)
    assert outcomes.count(True) == limit, outcomes
    db.session.expire_all()
    assert db.session.get(ShareLink, share_id).opens == limit


def test_downloads_are_counted_against_their_own_limit(clinic):
    share = _share(clinic, allow_download=True, max_downloads=2, max_opens=1).share
    counted = [services.count_download(share, "download", ip=None, user_agent=None) for _ in range(3)]
    assert counted == [True, True, False]
    assert share.opens == 0  # opens are counted apart
    no_download = _share(clinic).share
    assert not services.count_download(no_download, "download", ip=None, user_agent=None)


def test_the_first_open_notifies_the_patient_once(clinic):
    share = _share(clinic).share
    for _ in range(2):
        visit, _cookie = services.start_visit(share)
        services.admit(share, visit, ip=None, user_agent=None)
    notices = db.session.scalars(
        select(Notification).where(Notification.user_id == clinic["portal"].id)
    ).all()
    assert [n.text for n in notices] == ["Dr. Who opened the records you shared."]


def test_a_share_never_reaches_another_clinics_data(clinic):
    """Clinic B has a patient and a record with the same ids' neighbours; A's share shows only A's."""
    other = make_tenant("Other Clinic")
    other_doctor = make_user(other, "doctor")
    twin = make_patient(other, first_name="Liv", last_name="Hepburn")
    db.session.add(
        MedicalRecord(
            tenant_id=other.id, patient_id=twin.id, doctor_id=other_doctor.id, author_id=other_doctor.id,
            visit_at=datetime(2026, 10, 2, 9), chief_complaint="Other clinic's secret", status=FINALIZED,
        )
    )  # fmt: skip
    db.session.commit()
    share = _share(clinic).share
    # Even a share row tampered to point at B's patient shows nothing of B's: the clinic comes first.
    content = shared_content(share)
    assert [r.chief_complaint for r in content.records] == ["Yellow eyes"]
    share.patient_id = twin.id
    db.session.flush()
    with pytest.raises(LookupError):
        shared_content(share)  # no patient of this clinic has that id
    db.session.rollback()


def test_chosen_records_must_be_the_patients_own_finalized_ones(clinic):
    other_patient = make_patient(clinic["tenant"])
    draft = MedicalRecord(
        tenant_id=clinic["tenant"].id, patient_id=clinic["patient"].id, doctor_id=clinic["doctor"].id,
        author_id=clinic["doctor"].id, visit_at=datetime(2026, 10, 3, 9), chief_complaint="Draft",
    )  # fmt: skip
    foreign = MedicalRecord(
        tenant_id=clinic["tenant"].id, patient_id=other_patient.id, doctor_id=clinic["doctor"].id,
        author_id=clinic["doctor"].id, visit_at=datetime(2026, 10, 3, 9), chief_complaint="Not yours",
        status=FINALIZED,
    )  # fmt: skip
    db.session.add_all([draft, foreign])
    db.session.commit()
    for record in (draft, foreign):
        with pytest.raises(services.ShareError):
            _share(clinic, scope="records", scope_record_ids=[record.id])
    assert db.session.scalar(select(db.func.count()).select_from(ShareLink)) == 0
    created = _share(clinic, scope="records", scope_record_ids=[clinic["record"].id])
    assert [r.id for r in shared_content(created.share).records] == [clinic["record"].id]


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"passcode": "12345"}, "passcode"),
        ({"days": 12}, "days"),
        ({"days": None, "until": (utcnow() + timedelta(days=400)).date()}, "until"),
        ({"scope": "types", "scope_types": ["secrets"]}, "scope_types"),
        ({"max_opens": 0}, "max_opens"),
    ],
)
def test_refused_input_creates_nothing(clinic, changes, field):
    with pytest.raises(services.ShareError) as refused:
        _share(clinic, **changes)
    assert refused.value.field == field
    assert db.session.scalar(select(db.func.count()).select_from(ShareLink)) == 0


def test_revoking_ends_every_open_visit(clinic):
    share = _share(clinic).share
    visit, cookie = services.start_visit(share)
    services.admit(share, visit, ip=None, user_agent=None)
    services.revoke(_actor(clinic["portal"]), share.id)
    assert db.session.scalar(select(db.func.count()).select_from(ShareVisit)) == 0
    assert services.find_visit(share, cookie) is None


def test_the_sweep_marks_expired_links_and_removes_what_could_open_them(clinic):
    created = _share(clinic)
    created.share.expires_at = datetime(2020, 1, 1)
    db.session.commit()
    assert services.sweep_expired() == 1
    assert services.sweep_expired() == 0
    db.session.refresh(created.share)
    assert created.share.expired_marked_at is not None and created.share.status(utcnow()) == "expired"


def test_finding_one_shared_file_is_one_scoped_query_not_the_whole_content(clinic, monkeypatch):
    from sqlalchemy import event

    from healthcrm.sharing import content

    share = _share(clinic).share
    db.session.refresh(share)  # loaded before counting: only the file's own query is counted
    monkeypatch.setattr(content, "shared_content", lambda *_: pytest.fail("rebuilt the shared content"))
    statements = []

    def count(_conn, _cursor, statement, *_args):
        statements.append(statement)

    event.listen(db.engine, "before_cursor_execute", count)
    try:
        assert content.shared_attachment(share, 999_999) is None
    finally:
        event.remove(db.engine, "before_cursor_execute", count)
    assert len(statements) == 1 and "attachments" in statements[0], statements
