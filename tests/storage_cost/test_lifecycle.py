"""The lifecycle document the clinics' settings ask for, its difference against the bucket, and applying it
(CLI and the admins' page), on the local folder and on moto's S3 server."""

from __future__ import annotations

import time

import pytest
from sqlalchemy import select

from healthcrm.audit.models import AuditEvent
from healthcrm.extensions import db
from healthcrm.storage_cost.lifecycle import (
    ADDED,
    CHANGED,
    REMOVED,
    UNCHANGED,
    Change,
    LifecycleError,
    apply_bucket,
    apply_clinic,
    bucket_plan,
    canonical,
    clinic_plan,
    diff_rules,
    lifecycle_settings,
    save_settings,
    wanted_rules,
)
from healthcrm.storage_cost.models import LifecycleSettings
from tests.concurrency import parallel
from tests.factories import login
from tests.storage_cost.helpers import make_clinic

ABORT = {
    "ID": "healthcrm-abort-incomplete-uploads",
    "Filter": {"Prefix": ""},
    "Status": "Enabled",
    "AbortIncompleteMultipartUpload": {"DaysAfterInitiation": 7},
}


def _rule(tenant_id: int, glacier: int, deep: int, status: str = "Enabled") -> dict:
    return {
        "ID": f"healthcrm-clinic-{tenant_id}-archive",
        "Filter": {
            "And": {
                "Prefix": f"{tenant_id}/medical-records/",
                "Tags": [{"Key": "archive", "Value": "allowed"}],
            }
        },
        "Status": status,
        "Transitions": [
            {"Days": glacier, "StorageClass": "GLACIER"},
            {"Days": deep, "StorageClass": "DEEP_ARCHIVE"},
        ],
        "NoncurrentVersionTransitions": [{"NoncurrentDays": 30, "StorageClass": "GLACIER"}],
    }


def _form(glacier="90", deep="180", recent="30", enabled="on") -> dict:
    form = {"glacier_days": glacier, "deep_archive_days": deep, "recent_days": recent}
    if enabled:
        form["enabled"] = enabled
    return form


@pytest.fixture
def two_clinics(app, inline_jobs):
    """Riverside on the defaults, Lakeside at 120 / 300 days and off."""
    riverside, lakeside = make_clinic("Riverside"), make_clinic("Lakeside")
    save_settings(lakeside.actor(), _form("120", "300", "14", enabled=""))
    return riverside, lakeside


def _events(action: str) -> list[AuditEvent]:
    return list(
        db.session.scalars(select(AuditEvent).where(AuditEvent.action == action).order_by(AuditEvent.id))
    )


# --- the document -------------------------------------------------------------------------------------------


def test_the_document_has_one_rule_per_clinic_from_its_settings_and_the_shared_abort_rule(two_clinics):
    riverside, lakeside = two_clinics
    assert wanted_rules() == [
        _rule(riverside.id, 90, 180),
        _rule(lakeside.id, 120, 300, status="Disabled"),
        ABORT,
    ]
    # Nothing of the other areas' folders (audit archives, checkpoints, exports) is under a rule's prefix.
    prefixes = [rule["Filter"]["And"]["Prefix"] for rule in wanted_rules()[:2]]
    for folder in ("audit-archive", "audit-checkpoints", "clinic-exports", "audit-exports", "previews"):
        assert not any(f"{riverside.id}/{folder}/x".startswith(prefix) for prefix in prefixes)
    # Without ObjectSizeGreaterThan (moto drops it): the tag keeps small objects out.
    assert "ObjectSizeGreaterThan" not in str(wanted_rules())


def test_a_clinic_without_settings_gets_the_defaults(app):
    clinic = make_clinic()
    settings = lifecycle_settings(clinic.id)
    assert (settings.glacier_days, settings.deep_archive_days, settings.recent_days, settings.enabled) == (
        90,
        180,
        30,
        True,
    )
    assert db.session.scalar(select(LifecycleSettings)) is None


# --- settings -----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("form", "field", "message"),
    [
        (
            _form("90", "179"),
            "deep_archive_days",
            "DEEP_ARCHIVE must come at least 90 days after GLACIER (here day 180 or later): GLACIER bills "
            "every file for 90 days, so moving it on sooner is charged as an early deletion.",
        ),
        (
            _form("200", "250"),
            "deep_archive_days",
            "DEEP_ARCHIVE must come at least 90 days after GLACIER (here day 290 or later): GLACIER bills "
            "every file for 90 days, so moving it on sooner is charged as an early deletion.",
        ),
        (
            _form("ninety"),
            "glacier_days",
            "Move files to GLACIER after (days from upload): enter a whole number of days.",
        ),
        (
            _form("10"),
            "glacier_days",
            "Move files to GLACIER after (days from upload): between 30 and 3650 days. At least 30 days: a "
            "visit's files are read in the weeks after it.",
        ),
        (
            _form(recent="-1"),
            "recent_days",
            "A file opened in the last … days stays where it is: enter a whole number of days.",
        ),
        (
            _form(recent="400"),
            "recent_days",
            "A file opened in the last … days stays where it is: between 1 and 365 days. Opening a file "
            "takes it out of archiving at once, for this many days.",
        ),
    ],
)
def test_bad_settings_are_refused_with_a_clear_message_and_nothing_changes(app, form, field, message):
    clinic = make_clinic()
    with pytest.raises(LifecycleError) as refused:
        save_settings(clinic.actor(), form)
    assert (refused.value.field, refused.value.message) == (field, message)
    db.session.rollback()
    assert db.session.scalar(select(LifecycleSettings)) is None
    assert _events("storage.lifecycle_settings_changed") == []


def test_saving_settings_is_audited_with_the_changed_fields(app, inline_jobs):
    clinic = make_clinic()
    row, changed = save_settings(clinic.actor(), _form("100", "190"))
    assert (row.glacier_days, row.deep_archive_days, row.recent_days, row.enabled) == (100, 190, 30, True)
    assert changed == ["deep_archive_days", "glacier_days"]
    [event] = _events("storage.lifecycle_settings_changed")
    assert (event.tenant_id, event.actor_user_id, event.changed_fields) == (
        clinic.id,
        clinic.admin.id,
        '["deep_archive_days", "glacier_days"]',
    )


def test_only_admins_change_settings(app):
    clinic = make_clinic()
    with pytest.raises(PermissionError):
        save_settings(clinic.actor(clinic.doctor), _form())


# --- the difference ----------------------------------------------------------------------------------------


def test_the_difference_says_added_changed_removed_and_unchanged_rule_by_rule(two_clinics):
    riverside, lakeside = two_clinics
    in_bucket = [
        {**_rule(riverside.id, 60, 180), "Status": "Enabled"},  # older settings
        {
            "ID": "someone-elses-rule",
            "Filter": {"Prefix": "tmp/"},
            "Status": "Enabled",
            "Expiration": {"Days": 1},
        },
        ABORT,
    ]
    diffs = diff_rules(wanted_rules(), in_bucket)
    assert [(d.rule_id, d.status) for d in diffs] == [
        (f"healthcrm-clinic-{riverside.id}-archive", CHANGED),
        (f"healthcrm-clinic-{lakeside.id}-archive", ADDED),
        ("healthcrm-abort-incomplete-uploads", UNCHANGED),
        ("someone-elses-rule", REMOVED),
    ]
    assert diffs[0].changes == [Change("Transitions[0].Days", 60, 90)]
    assert diffs[0].json_diff == [
        "--- bucket",
        "+++ settings",
        "@@ -21,5 +21,5 @@",
        '   "Transitions": [',
        "     {",
        '-      "Days": 60,',
        '+      "Days": 90,',
        '       "StorageClass": "GLACIER"',
        "     },",
    ]
    assert diffs[1].changes == [] and diffs[1].current is None
    assert diffs[3].wanted is None


def test_rules_compare_equal_whatever_the_order_of_tags_and_transitions():
    rule = _rule(1, 90, 180)
    shuffled = {**rule, "Transitions": list(reversed(rule["Transitions"]))}
    shuffled["Filter"] = {"And": {"Tags": rule["Filter"]["And"]["Tags"], "Prefix": "1/medical-records/"}}
    assert canonical(shuffled) == canonical(rule)
    assert diff_rules([rule], [shuffled])[0].status == UNCHANGED


# --- applying ----------------------------------------------------------------------------------------------


def test_apply_writes_the_whole_document_reads_it_back_and_audits_each_clinic(two_clinics, storage):
    riverside, lakeside = two_clinics
    storage.put_lifecycle([{"ID": "someone-elses-rule", "Filter": {"Prefix": "tmp/"}, "Status": "Enabled",
                            "Expiration": {"Days": 1}}])  # fmt: skip
    plan = apply_bucket()
    assert [d.status for d in plan.diffs] == [ADDED, ADDED, ADDED, REMOVED]
    assert [canonical(rule) for rule in storage.get_lifecycle()] == [
        canonical(rule) for rule in wanted_rules()
    ]
    assert not bucket_plan().pending
    events = _events("storage.lifecycle_applied")
    assert [(e.tenant_id, e.actor_role, e.resource_id) for e in events] == [
        (riverside.id, "system", f"healthcrm-clinic-{riverside.id}-archive"),
        (lakeside.id, "system", f"healthcrm-clinic-{lakeside.id}-archive"),
    ]


def test_a_clinics_apply_writes_its_own_rule_and_keeps_the_others(two_clinics, storage):
    riverside, lakeside = two_clinics
    theirs = _rule(lakeside.id, 365, 730)  # as Lakeside last applied it, before its new settings
    storage.put_lifecycle([theirs])
    plan = clinic_plan(riverside.id)
    assert [(d.rule_id, d.status) for d in plan.diffs] == [
        (f"healthcrm-clinic-{riverside.id}-archive", ADDED),
        ("healthcrm-abort-incomplete-uploads", ADDED),
    ]
    apply_clinic(riverside.actor())
    assert [canonical(rule) for rule in storage.get_lifecycle()] == [
        canonical(theirs),
        canonical(_rule(riverside.id, 90, 180)),
        canonical(ABORT),
    ]
    [event] = _events("storage.lifecycle_applied")
    assert (event.tenant_id, event.actor_user_id) == (riverside.id, riverside.admin.id)
    assert not clinic_plan(riverside.id).pending


def test_two_clinics_applying_at_once_both_keep_their_rule(app, two_clinics, storage):
    """Each reads the bucket's rules, adds its own and writes them back: without the lock, the second write
    (slowed here so the two overlap) would drop the first clinic's rule."""
    riverside, lakeside = two_clinics
    actors = [riverside.actor(), lakeside.actor()]
    put = storage.put_lifecycle

    def slow_put(rules):
        time.sleep(0.3)
        put(rules)

    storage.put_lifecycle = slow_put
    outcomes = parallel(2, app, lambda i: apply_clinic(actors[i]))
    assert not [o for o in outcomes if isinstance(o, Exception)], outcomes
    ids = sorted(rule["ID"] for rule in storage.get_lifecycle())
    assert ids == sorted(
        [
            f"healthcrm-clinic-{riverside.id}-archive",
            f"healthcrm-clinic-{lakeside.id}-archive",
            "healthcrm-abort-incomplete-uploads",
        ]
    )


# --- the CLI -----------------------------------------------------------------------------------------------


def test_the_cli_prints_the_difference_and_the_warnings_then_applies(app, two_clinics, storage):
    riverside, _lakeside = two_clinics
    runner = app.test_cli_runner()
    shown = runner.invoke(args=["storage", "lifecycle"])
    assert shown.exit_code == 0, shown.output
    lines = shown.output.splitlines()
    assert lines[0].endswith(": 3 wanted; 3 added, 0 changed, 0 removed, 0 unchanged.")
    assert f"  added      healthcrm-clinic-{riverside.id}-archive" in lines
    assert "Rule checker:" in lines
    assert f"  Riverside 1 (clinic {riverside.id}): no warnings" in lines or any(
        line.startswith("  Riverside") for line in lines
    )
    assert lines[-1] == "Run again with --apply to write these rules."
    assert storage.get_lifecycle() == []

    applied = runner.invoke(args=["storage", "lifecycle", "--apply"])
    assert applied.exit_code == 0, applied.output
    assert applied.output.splitlines()[-1].startswith("Applied: 3 rules written to ")
    assert len(storage.get_lifecycle()) == 3

    save_settings(riverside.actor(), _form("100", "200"))
    again = runner.invoke(args=["storage", "lifecycle"])
    assert f"  changed    healthcrm-clinic-{riverside.id}-archive" in again.output
    assert "               Transitions[0].Days: 90 -> 100" in again.output
    assert "               Transitions[1].Days: 180 -> 200" in again.output
    runner.invoke(args=["storage", "lifecycle", "--apply"])
    assert runner.invoke(args=["storage", "lifecycle"]).output.splitlines()[-1] == (
        "The bucket already has what the settings ask for."
    )


# --- the page ----------------------------------------------------------------------------------------------


def test_the_page_previews_saves_and_applies(two_clinics, storage, client):
    riverside, lakeside = two_clinics
    storage.put_lifecycle([_rule(lakeside.id, 365, 730)])
    login(client, riverside.admin.email)

    page = client.get("/admin/storage/lifecycle")
    assert page.status_code == 200
    body = page.get_data(as_text=True)
    assert f"healthcrm-clinic-{riverside.id}-archive" in body
    assert f"healthcrm-clinic-{lakeside.id}-archive" not in body  # another clinic's rule is not shown
    assert "Apply to the bucket" in body
    assert "Rule checker" in body

    refused = client.post("/admin/storage/lifecycle", data=_form("90", "120"))
    assert refused.status_code == 422
    assert (
        "DEEP_ARCHIVE must come at least 90 days after GLACIER (here day 180 or later)"
        in refused.get_data(as_text=True)
    )
    assert lifecycle_settings(riverside.id).deep_archive_days == 180

    saved = client.post("/admin/storage/lifecycle", data=_form("95", "200"), follow_redirects=True)
    assert "Lifecycle settings saved." in saved.get_data(as_text=True)
    assert "Transitions[0].Days" not in saved.get_data(as_text=True)  # not in the bucket yet: added

    applied = client.post("/admin/storage/lifecycle/apply", data={}, follow_redirects=True)
    text = applied.get_data(as_text=True)
    assert "2 rules written, read back and matched." in text
    assert "The bucket already has what these settings ask for." in text
    assert [rule["ID"] for rule in storage.get_lifecycle()] == [
        f"healthcrm-clinic-{lakeside.id}-archive",
        f"healthcrm-clinic-{riverside.id}-archive",
        "healthcrm-abort-incomplete-uploads",
    ]
    assert canonical(storage.get_lifecycle()[1]) == canonical(_rule(riverside.id, 95, 200))
    assert len(_events("storage.lifecycle_applied")) == 1


def test_doctors_cannot_open_or_apply(app, client):
    clinic = make_clinic()
    login(client, clinic.doctor.email)
    assert client.get("/admin/storage/lifecycle").status_code == 403
    assert client.post("/admin/storage/lifecycle/apply", data={}).status_code == 403
