"""The bucket's lifecycle rules: each clinic's settings, the document they ask for, its difference against
what the bucket has, and applying it.

One rule per clinic moves its attachments (`<tenant>/medical-records/…`, the files area's key layout:
healthcrm/files/storage/keys.py) that carry the tag `archive=allowed` to GLACIER and then DEEP_ARCHIVE,
so the audit log's archives and checkpoints, exports, previews and quarantined files (other folders of the
same tenant) are never transitioned. The app keeps the tag on exactly the versions that may be archived
(healthcrm/storage_cost/tags.py): that is how drafts, legal holds, recently opened and small files stay
out, since S3's rules know only an object's prefix, tags, age and size. Size is not used in the filter:
moto's S3 drops `ObjectSizeGreaterThan` from stored rules, so the size limit lives in the tag too.

A bucket-wide rule aborts multipart uploads left incomplete for 7 days (S3 refuses a tag filter on that
action, and an abandoned upload is never anyone's data).
"""

from __future__ import annotations

import difflib
import json
from dataclasses import dataclass, field
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError
from flask import current_app
from sqlalchemy import select, text

from ..accounts.models import Tenant
from ..audit.services import Actor, record_event
from ..clock import utcnow
from ..errors import DomainError
from ..extensions import db
from ..files.storage import KEY_AREA, LocalStorage, S3Storage, Storage, get_storage
from ..permissions import require
from ..tenancy import scoped
from ..tenant_scope import ALL_TENANTS
from .models import (
    DEEP_ARCHIVE_DAYS_DEFAULT,
    GLACIER_DAYS_DEFAULT,
    RECENT_DAYS_DEFAULT,
    LifecycleSettings,
)

TAG_KEY = "archive"
TAG_ALLOWED = "allowed"
RULE_ID_PREFIX = "healthcrm-"
ABORT_RULE_ID = "healthcrm-abort-incomplete-uploads"
ABORT_AFTER_DAYS = 7
NONCURRENT_GLACIER_DAYS = 30
# GLACIER bills at least 90 days: leaving it for DEEP_ARCHIVE sooner is charged as an early deletion.
GLACIER_MINIMUM_DAYS = 90
S3_MAX_RULES = 1000
# Any number serves, as long as nothing else in the app takes the same PostgreSQL advisory lock.
APPLY_LOCK_KEY = 7_014_001


class LifecycleError(DomainError):
    """Lifecycle settings the admin can fix, or a document the bucket cannot take."""


@dataclass(frozen=True)
class Field:
    name: str
    label: str
    minimum: int
    maximum: int
    hint: str


FIELDS = [
    Field("glacier_days", "Move files to GLACIER after (days from upload)", 30, 3650,
          "At least 30 days: a visit's files are read in the weeks after it."),
    Field("deep_archive_days", "Move files to DEEP_ARCHIVE after (days from upload)", 120, 3740,
          "At least 90 days after GLACIER: GLACIER bills every file for 90 days at least."),
    Field("recent_days", "A file opened in the last … days stays where it is", 1, 365,
          "Opening a file takes it out of archiving at once, for this many days."),
]  # fmt: skip


def lifecycle_settings(tenant_id: int) -> LifecycleSettings:
    """The clinic's lifecycle settings; an unsaved row of defaults when it has none."""
    found = db.session.scalar(scoped(LifecycleSettings, tenant_id))
    if found is not None:
        return found
    return _defaults(tenant_id)


def _defaults(tenant_id: int) -> LifecycleSettings:
    return LifecycleSettings(
        tenant_id=tenant_id,
        glacier_days=GLACIER_DAYS_DEFAULT,
        deep_archive_days=DEEP_ARCHIVE_DAYS_DEFAULT,
        recent_days=RECENT_DAYS_DEFAULT,
        enabled=True,
    )


def check_settings(form: dict[str, Any]) -> dict[str, Any]:
    """The values of the form, checked: LifecycleError naming the field for the first bad one."""
    values: dict[str, Any] = {}
    for rule in FIELDS:
        raw = str(form.get(rule.name) or "").strip()
        if not raw.isdigit() or len(raw) > 5:
            raise LifecycleError(f"{rule.label}: enter a whole number of days.", rule.name)
        value = int(raw)
        if not rule.minimum <= value <= rule.maximum:
            raise LifecycleError(
                f"{rule.label}: between {rule.minimum} and {rule.maximum} days. {rule.hint}", rule.name
            )
        values[rule.name] = value
    earliest = values["glacier_days"] + GLACIER_MINIMUM_DAYS
    if values["deep_archive_days"] < earliest:
        raise LifecycleError(
            f"DEEP_ARCHIVE must come at least {GLACIER_MINIMUM_DAYS} days after GLACIER (here day "
            f"{earliest} or later): GLACIER bills every file for {GLACIER_MINIMUM_DAYS} days, so moving it "
            "on sooner is charged as an early deletion.",
            "deep_archive_days",
        )
    values["enabled"] = str(form.get("enabled") or "").lower() in {"1", "on", "true", "yes"}
    return values


def save_settings(actor: Actor, form: dict[str, Any]) -> tuple[LifecycleSettings, list[str]]:
    """Check and save the clinic's settings (audited); return them and the names of the fields that
    changed. Bad input: LifecycleError naming the field, nothing saved. A change re-evaluates the clinic's
    tags at once (the `storage.tags` job), so turning archiving off takes every file out without an Apply."""
    require(actor, "storage.manage")
    values = check_settings(form)
    row = lifecycle_settings(actor.tenant_id)
    changed = sorted(name for name, value in values.items() if getattr(row, name) != value)
    for name, value in values.items():
        setattr(row, name, value)
    row.updated_at, row.updated_by_user_id = utcnow(), actor.user_id
    db.session.add(row)
    record_event(
        actor,
        "storage.lifecycle_settings_changed",
        resource_type="tenant",
        resource_id=actor.tenant_id,
        changed_fields=changed,
    )
    db.session.commit()
    if changed:
        from ..jobs.queue import enqueue  # noqa: PLC0415 - the jobs package imports the app's areas

        enqueue("storage.tags", tenant_id=actor.tenant_id, user_id=actor.user_id, label="Archive tags")
    return row, changed


# --- the document ----------------------------------------------------------------------------------------


def clinic_prefix(tenant_id: int) -> str:
    """Where the clinic's attachments live (records' files and patient documents alike)."""
    return f"{tenant_id}/{KEY_AREA}/"


def clinic_rule_id(tenant_id: int) -> str:
    return f"{RULE_ID_PREFIX}clinic-{tenant_id}-archive"


def clinic_rule(settings: LifecycleSettings) -> dict[str, Any]:
    """The clinic's rule as S3 spells it. Off: the same rule, disabled (and the tags removed)."""
    return {
        "ID": clinic_rule_id(settings.tenant_id),
        "Filter": {
            "And": {
                "Prefix": clinic_prefix(settings.tenant_id),
                "Tags": [{"Key": TAG_KEY, "Value": TAG_ALLOWED}],
            }
        },
        "Status": "Enabled" if settings.enabled else "Disabled",
        "Transitions": [
            {"Days": settings.glacier_days, "StorageClass": "GLACIER"},
            {"Days": settings.deep_archive_days, "StorageClass": "DEEP_ARCHIVE"},
        ],
        "NoncurrentVersionTransitions": [
            {"NoncurrentDays": NONCURRENT_GLACIER_DAYS, "StorageClass": "GLACIER"}
        ],
    }


def shared_rules() -> list[dict[str, Any]]:
    """The rules of the whole bucket, whatever the clinics' settings."""
    return [
        {
            "ID": ABORT_RULE_ID,
            "Filter": {"Prefix": ""},
            "Status": "Enabled",
            "AbortIncompleteMultipartUpload": {"DaysAfterInitiation": ABORT_AFTER_DAYS},
        }
    ]


def all_settings() -> list[LifecycleSettings]:
    """Every clinic's settings (defaults for those without a row), by clinic id."""
    # The bucket is shared by every clinic: its document is built from all of them on purpose.
    tenants = db.session.scalars(select(Tenant.id).order_by(Tenant.id).execution_options(**ALL_TENANTS))
    saved = {
        row.tenant_id: row
        for row in db.session.scalars(select(LifecycleSettings).execution_options(**ALL_TENANTS))
    }
    return [saved.get(tenant_id) or _defaults(tenant_id) for tenant_id in tenants]


def wanted_rules() -> list[dict[str, Any]]:
    """The whole lifecycle document the settings ask for: one rule per clinic, then the shared ones."""
    rules = [clinic_rule(settings) for settings in all_settings()] + shared_rules()
    if len(rules) > S3_MAX_RULES:
        raise LifecycleError(
            f"S3 takes at most {S3_MAX_RULES} lifecycle rules; {len(rules)} clinics' rules do not fit."
        )
    return rules


# --- the difference ----------------------------------------------------------------------------------------


def canonical(rule: dict[str, Any]) -> dict[str, Any]:
    """A rule in one spelling, so that what S3 answers compares equal to what was put: tags sorted by key,
    transitions by day, empty fields dropped, the old top-level `Prefix` read as a filter."""
    rule = json.loads(json.dumps(rule, default=str))
    if "Prefix" in rule and "Filter" not in rule:
        rule["Filter"] = {"Prefix": rule.pop("Prefix")}
    for holder in (rule.get("Filter") or {}, (rule.get("Filter") or {}).get("And") or {}):
        if "Tags" in holder:
            holder["Tags"] = sorted(holder["Tags"], key=lambda tag: (tag.get("Key"), tag.get("Value")))
    for name, day in (("Transitions", "Days"), ("NoncurrentVersionTransitions", "NoncurrentDays")):
        if name in rule:
            rule[name] = sorted(rule[name], key=lambda step: (step.get(day, 0), step.get("StorageClass")))
    return {key: value for key, value in rule.items() if value not in (None, [], {})}


ADDED, CHANGED, REMOVED, UNCHANGED = "added", "changed", "removed", "unchanged"


@dataclass(frozen=True)
class Change:
    path: str  # "Transitions[0].Days"
    before: Any
    after: Any


@dataclass
class RuleDiff:
    rule_id: str
    status: str  # ADDED, CHANGED, REMOVED, UNCHANGED
    wanted: dict[str, Any] | None
    current: dict[str, Any] | None
    changes: list[Change] = field(default_factory=list)

    @property
    def json_diff(self) -> list[str]:
        """A unified diff of the rule's JSON, bucket first (for the CLI and the page)."""
        before = json.dumps(self.current, indent=2, sort_keys=True).splitlines() if self.current else []
        after = json.dumps(self.wanted, indent=2, sort_keys=True).splitlines() if self.wanted else []
        return list(difflib.unified_diff(before, after, "bucket", "settings", lineterm="", n=2))


def _changes(before: Any, after: Any, path: str = "") -> list[Change]:
    if isinstance(before, dict) and isinstance(after, dict):
        found = []
        for key in sorted(set(before) | set(after)):
            where = f"{path}.{key}" if path else key
            found += _changes(before.get(key), after.get(key), where)
        return found
    if isinstance(before, list) and isinstance(after, list) and len(before) == len(after):
        return [
            c
            for i, (b, a) in enumerate(zip(before, after, strict=True))
            for c in _changes(b, a, f"{path}[{i}]")
        ]
    return [] if before == after else [Change(path, before, after)]


def _rule_id(rule: dict[str, Any], index: int) -> str:
    return str(rule.get("ID") or f"(rule {index + 1} without an ID)")


def diff_rules(wanted: list[dict[str, Any]], current: list[dict[str, Any]]) -> list[RuleDiff]:
    """Rule by rule (matched by ID): the wanted rules in their order, then those only the bucket has."""
    have = {_rule_id(rule, i): canonical(rule) for i, rule in enumerate(current)}
    diffs = []
    for i, rule in enumerate(wanted):
        rule_id, want = _rule_id(rule, i), canonical(rule)
        now = have.pop(rule_id, None)
        if now is None:
            diffs.append(RuleDiff(rule_id, ADDED, want, None))
        elif now == want:
            diffs.append(RuleDiff(rule_id, UNCHANGED, want, now))
        else:
            diffs.append(RuleDiff(rule_id, CHANGED, want, now, _changes(now, want)))
    diffs += [RuleDiff(rule_id, REMOVED, None, now) for rule_id, now in have.items()]
    return diffs


@dataclass
class LifecyclePlan:
    """What applying would change: the rules compared, where the bucket is, and the rules to write."""

    target: str
    diffs: list[RuleDiff]
    rules: list[dict[str, Any]]  # the document that applying writes

    @property
    def pending(self) -> bool:
        return any(diff.status != UNCHANGED for diff in self.diffs)

    def count(self, status: str) -> int:
        return sum(1 for diff in self.diffs if diff.status == status)


def describe(storage: Storage) -> str:
    if isinstance(storage, S3Storage):
        where = f" at {storage.client.meta.endpoint_url}" if current_app.config.get("S3_ENDPOINT_URL") else ""
        return f"S3 bucket {storage.bucket}{where}"
    if isinstance(storage, LocalStorage):
        return f"the local storage folder {storage.root} (rules stored as JSON, never run)"
    return type(storage).__name__


STORAGE_ERRORS = (BotoCoreError, ClientError, OSError)


def read_rules(storage: Storage) -> list[dict[str, Any]]:
    """The bucket's rules; LifecycleError (not a 500) when the store cannot be reached or refuses."""
    try:
        return storage.get_lifecycle()
    except STORAGE_ERRORS as error:
        raise LifecycleError(f"The bucket's lifecycle rules could not be read: {error}") from None


def bucket_plan() -> LifecyclePlan:
    """The whole document against the whole bucket (the operator's `flask storage lifecycle`)."""
    storage = get_storage(current_app)
    wanted = wanted_rules()
    return LifecyclePlan(describe(storage), diff_rules(wanted, read_rules(storage)), wanted)


def _own_ids(tenant_id: int) -> set[str]:
    return {clinic_rule_id(tenant_id)} | {rule["ID"] for rule in shared_rules()}


def clinic_plan(tenant_id: int) -> LifecyclePlan:
    """The clinic's own rule and the shared ones against the bucket (the admin's page): other clinics'
    rules are neither shown nor touched, and the rules to write keep them as the bucket has them."""
    storage = get_storage(current_app)
    current = read_rules(storage)
    own = [clinic_rule(lifecycle_settings(tenant_id)), *shared_rules()]
    ids = _own_ids(tenant_id)
    kept = [rule for i, rule in enumerate(current) if _rule_id(rule, i) not in ids]
    mine = [rule for i, rule in enumerate(current) if _rule_id(rule, i) in ids]
    diffs = diff_rules(own, mine)
    if len(kept) + len(own) > S3_MAX_RULES:
        raise LifecycleError(f"S3 takes at most {S3_MAX_RULES} lifecycle rules; the bucket is full.")
    return LifecyclePlan(describe(storage), diffs, kept + own)


# --- applying ----------------------------------------------------------------------------------------------


def _serialize_applies() -> None:
    """Hold, until the transaction ends, the lock that puts applies one after the other: each reads the
    bucket's rules, changes some and writes them all back, so two at once would lose one's change."""
    if db.engine.dialect.name == "postgresql":
        db.session.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": APPLY_LOCK_KEY})
    else:
        # SQLite has one writer at a time: a write statement takes the database's lock until commit.
        db.session.execute(text("UPDATE lifecycle_settings SET id = id WHERE 1 = 0"))


def _write_and_confirm(storage: Storage, rules: list[dict[str, Any]]) -> None:
    try:
        storage.put_lifecycle(rules)
    except STORAGE_ERRORS as error:
        raise LifecycleError(f"The bucket refused the lifecycle rules: {error}") from None
    back = diff_rules(rules, read_rules(storage))
    differing = [diff.rule_id for diff in back if diff.status != UNCHANGED]
    if differing:
        raise LifecycleError(
            "The bucket took the rules but reads back otherwise for: " + ", ".join(differing) + "."
        )


def apply_clinic(actor: Actor) -> LifecyclePlan:
    """Write the clinic's rule and the shared ones into the bucket (other clinics' rules kept as they are),
    read them back to confirm, and audit it. Returns the plan that was applied."""
    require(actor, "storage.manage")
    _serialize_applies()
    plan = clinic_plan(actor.tenant_id)
    changed = [f"{diff.rule_id}:{diff.status}" for diff in plan.diffs if diff.status != UNCHANGED]
    record_event(
        actor,
        "storage.lifecycle_applied",
        resource_type="lifecycle",
        resource_id=clinic_rule_id(actor.tenant_id),
        changed_fields=changed,
    )
    try:
        _write_and_confirm(get_storage(current_app), plan.rules)
    except LifecycleError:
        db.session.rollback()  # no event for a change that did not happen
        raise
    db.session.commit()
    return plan


def apply_bucket() -> LifecyclePlan:
    """Write the whole document (`flask storage lifecycle --apply`), read it back to confirm; each clinic
    whose rule changed gets the event in its own audit chain."""
    _serialize_applies()
    plan = bucket_plan()
    for diff in plan.diffs:
        tenant_id = _tenant_of(diff.rule_id)
        if diff.status != UNCHANGED and tenant_id is not None:
            record_event(
                Actor.system(tenant_id), "storage.lifecycle_applied", resource_type="lifecycle",
                resource_id=diff.rule_id, changed_fields=[f"{diff.rule_id}:{diff.status}"],
            )  # fmt: skip
    try:
        _write_and_confirm(get_storage(current_app), plan.rules)
    except LifecycleError:
        db.session.rollback()
        raise
    db.session.commit()
    return plan


def _tenant_of(rule_id: str) -> int | None:
    prefix, suffix = f"{RULE_ID_PREFIX}clinic-", "-archive"
    if rule_id.startswith(prefix) and rule_id.endswith(suffix):
        number = rule_id[len(prefix) : -len(suffix)]
        if number.isdigit():
            found = db.session.scalar(
                select(Tenant.id).where(Tenant.id == int(number)).execution_options(**ALL_TENANTS)
            )
            return found
    return None
