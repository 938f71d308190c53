"""Signed checkpoints of each clinic's audit chain, kept outside the database.

A hash chain shows a row altered or removed in the middle, but not the newest rows removed together with
the head row that names them: the shortened chain is still a valid chain. So, every day (and on
`flask audit checkpoint`), each clinic's chain head (the newest event's id and hash, and the number of
events) is written to storage as a small JSON document signed with an Ed25519 key the database does not
hold (`AUDIT_SIGNING_KEY_FILE`). On S3 with Object Lock the document is kept in compliance mode: nobody can
delete it before its retention date. Verification needs only the public key.

`verify_checkpoints` then knows that event N with hash H existed at the checkpoint's time: if the log now
ends before N, or its event N has another hash, the newest rows were removed or rewritten; it names the
missing range.
"""

from __future__ import annotations

import base64
import json
import os
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from flask import current_app
from sqlalchemy import func, select

from ..accounts.models import Tenant
from ..clock import utcnow
from ..extensions import db
from ..files.storage import get_storage
from ..tenant_scope import ALL_TENANTS
from .archive import DELETED, archived_count, archived_hash
from .models import AuditChainHead, AuditEvent

FORMAT = "healthcrm-audit-checkpoint/1"
PREFIX = "audit-checkpoints/"


def _prefix(tenant_id: int) -> str:
    return f"{tenant_id}/{PREFIX}"


# --- the key ------------------------------------------------------------------------------------------------


def signing_key() -> Ed25519PrivateKey:
    """The private key from AUDIT_SIGNING_KEY_FILE; the embedded setup makes one (mode 0600) on first use.

    In production keep the file on the application hosts only (a secret store), never in the database or
    its backups: whoever holds it can write checkpoints.
    """
    path = Path(current_app.config["AUDIT_SIGNING_KEY_FILE"])
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        pem = Ed25519PrivateKey.generate().private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
        # O_EXCL: two processes making the key at once keep the first one's.
        try:
            descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            pass
        else:
            with os.fdopen(descriptor, "wb") as out:
                out.write(pem)
    key = serialization.load_pem_private_key(path.read_bytes(), password=None)
    if not isinstance(key, Ed25519PrivateKey):
        raise ValueError(f"{path} is not an Ed25519 private key")
    return key


def key_id(public: Ed25519PublicKey) -> str:
    raw = public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return raw.hex()[:16]


def _canonical(document: dict) -> bytes:
    return json.dumps(document, sort_keys=True, separators=(",", ":")).encode()


# --- writing ------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Checkpoint:
    key: str
    tenant_id: int
    event_id: int | None
    hash: str
    events: int
    written_at: str
    locked: bool = False


def write_checkpoint(tenant_id: int) -> Checkpoint:
    """Sign the clinic's chain head as it is now and store it under `<tenant>/audit-checkpoints/`."""
    head = db.session.get(AuditChainHead, tenant_id)
    now = utcnow()
    document = {
        "format": FORMAT,
        "tenant_id": tenant_id,
        "event_id": head.last_event_id if head else None,
        "hash": head.hash if head else None,
        "events": head.events if head else 0,
        "written_at": now.isoformat(timespec="microseconds"),
    }
    private = signing_key()
    document["key_id"] = key_id(private.public_key())
    signature = base64.b64encode(private.sign(_canonical(document))).decode()
    body = json.dumps({"checkpoint": document, "signature": signature}, indent=2).encode()
    storage_key = f"{_prefix(tenant_id)}{now:%Y%m%dT%H%M%S%fZ}.json"
    retain_until = now + timedelta(days=current_app.config["AUDIT_CHECKPOINT_LOCK_DAYS"])
    locked = get_storage(current_app).put_retained(storage_key, body, "application/json", retain_until)
    return Checkpoint(
        storage_key, tenant_id, document["event_id"], document["hash"] or "", document["events"],
        document["written_at"], locked,
    )  # fmt: skip


def clinic_ids() -> list[int]:
    return list(db.session.scalars(select(Tenant.id).order_by(Tenant.id).execution_options(**ALL_TENANTS)))


def write_all_checkpoints() -> str:
    """Periodic (daily): one checkpoint for every clinic."""
    written = [write_checkpoint(tenant_id) for tenant_id in clinic_ids()]
    return f"{len(written)} checkpoints written"


# --- verifying ----------------------------------------------------------------------------------------------


@dataclass
class CheckpointReport:
    checked: int = 0
    problems: list[CheckpointProblem] = field(default_factory=list)

    @property
    def intact(self) -> bool:
        return not self.problems


@dataclass(frozen=True)
class CheckpointProblem:
    tenant_id: int
    key: str
    description: str
    first_bad_event_id: int | None = None


def _read(storage, key: str, public: Ed25519PublicKey) -> tuple[dict | None, str | None]:
    """The checkpoint's document, or why it cannot be trusted."""
    try:
        with storage.open_stream(key) as stream:
            stored = json.loads(stream.read())
        document, signature = stored["checkpoint"], base64.b64decode(stored["signature"])
    except (ValueError, KeyError, TypeError):
        return None, "the checkpoint file cannot be read"
    try:
        public.verify(signature, _canonical(document))
    except InvalidSignature:
        return None, "its signature does not match (the checkpoint was altered or signed with another key)"
    return document, None


def verify_checkpoints(tenant_id: int | None = None) -> CheckpointReport:
    """Check every stored checkpoint of one clinic (or all): signed by our key, and its event still in the
    log with the same hash. Reports, per clinic, the newest checkpoint the log no longer agrees with."""
    report = CheckpointReport()
    storage = get_storage(current_app)
    public = signing_key().public_key()
    for clinic in [tenant_id] if tenant_id is not None else clinic_ids():
        newest_id = db.session.scalar(select(func.max(AuditEvent.id)).where(AuditEvent.tenant_id == clinic))
        for key in reversed(storage.list_keys(_prefix(clinic))):
            report.checked += 1
            document, problem = _read(storage, key, public)
            if problem:
                report.problems.append(CheckpointProblem(clinic, key, f"Checkpoint {key}: {problem}."))
                continue
            problem = _disagreement(clinic, document, newest_id)
            if problem:
                report.problems.append(CheckpointProblem(clinic, key, problem[0], problem[1]))
                break  # older checkpoints name older events: the first finding is the one to act on
    return report


def _disagreement(clinic: int, document: dict, newest_id: int | None) -> tuple[str, int] | None:
    event_id, expected = document.get("event_id"), document.get("hash")
    if event_id is None or document.get("tenant_id") != clinic:
        return None if event_id is None else (f"Checkpoint for clinic {document.get('tenant_id')}", event_id)
    written = document.get("written_at", "")[:19].replace("T", " ")
    source = f"the checkpoint of {written} UTC names event {event_id} with hash {expected[:12]}…"
    if newest_id is None or newest_id < event_id:
        now_count = db.session.scalar(select(func.count()).where(AuditEvent.tenant_id == clinic)) or 0
        missing = max(1, (document.get("events") or 0) - now_count - archived_count(clinic))
        after = f"after event {newest_id}" if newest_id else "from the first event"
        text = (
            f"Audit log of clinic {clinic}: the newest events were deleted: {missing} missing, {after} up to "
            f"event {event_id} (the log now ends at event {newest_id or 'none'}); {source} and counted "
            f"{document.get('events')} events."
        )
        return text, (newest_id or 0) + 1
    found = db.session.scalar(
        select(AuditEvent.hash).where(AuditEvent.tenant_id == clinic, AuditEvent.id == event_id)
    )
    if found is None:
        found = archived_hash(clinic, event_id)
        if found == DELETED:  # the month it was in is past retention: nothing left to compare
            return None
        if found is None:
            return f"Audit log of clinic {clinic}: event {event_id} is missing; {source}.", event_id
    if found != expected:
        return f"Audit log of clinic {clinic}: event {event_id} was rewritten; {source}.", event_id
    return None
