"""`flask files ensure-bucket`: create the S3 bucket if needed, with default encryption and the CORS rule
that lets browsers upload straight to it from PUBLIC_URL."""

from __future__ import annotations

import click
from flask import current_app
from flask.cli import AppGroup

from .storage import S3Storage, get_storage

files_cli = AppGroup("files", help="Attachment storage.")


@files_cli.command("ensure-bucket")
@click.option(
    "--object-lock",
    is_flag=True,
    help="Create the bucket with S3 Object Lock, so audit checkpoints are kept in compliance mode "
    "(possible only when the bucket is created).",
)
def ensure_bucket(object_lock: bool) -> None:
    storage = get_storage(current_app)
    if not isinstance(storage, S3Storage):
        click.echo("STORAGE_BACKEND is local: nothing to do (files go to STORAGE_LOCAL_ROOT).")
        return
    origin = current_app.config["PUBLIC_URL"]
    storage.ensure_bucket(default_encryption=True, cors_origins=[origin], object_lock=object_lock)
    click.echo(f"Bucket {storage.bucket}: SSE AES256 by default, browser uploads allowed from {origin}.")
    if storage.object_lock_enabled():
        click.echo("Object Lock is on: audit checkpoints are written in compliance mode.")
    elif object_lock:
        click.echo(
            "Object Lock is OFF: the bucket existed already, and S3 turns it on only when a bucket is "
            "created. Create a new bucket with --object-lock to keep checkpoints undeletable.",
            err=True,
        )
