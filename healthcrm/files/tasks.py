"""Job functions of the files area. Thin: load by id, call the service, report progress."""

from __future__ import annotations

from ..accounts.models import User
from ..audit.services import Actor
from ..jobs.queue import task
from ..tenancy import get_scoped
from . import processing, services


@task("files.scan")
def scan(version_id: int, *, progress) -> dict:
    return {"status": processing.scan_version(version_id, progress.tenant_id)}


@task("files.preview")
def preview(version_id: int, *, progress) -> dict:
    return {"status": processing.make_previews(version_id, progress.tenant_id)}


@task("files.zip")
def zip_files(user_id: int, record_id: int, ids: str, *, progress) -> dict:
    """`ids` is a comma-separated list of attachment ids (job arguments are ints or strings)."""
    user = get_scoped(User, user_id, progress.tenant_id)
    actor = Actor(tenant_id=user.tenant_id, user_id=user.id, role=user.role)
    key, name = services.write_zip(actor, record_id, [int(i) for i in ids.split(",") if i], progress)
    return {"key": key, "name": name}
