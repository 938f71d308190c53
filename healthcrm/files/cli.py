"""`flask files ensure-bucket`: create the S3 bucket if needed, with default encryption and the CORS rule
that lets browsers upload straight to it from PUBLIC_URL."""

from __future__ import annotations

import click
from flask import current_app
from flask.cli import AppGroup

from .storage import S3Storage, get_storage

files_cli = AppGroup("files", help="Attachment storage.")


@files_cli.command("ensure-bucket")
def ensure_bucket() -> None:
    storage = get_storage(current_app)
    if not isinstance(storage, S3Storage):
        click.echo("STORAGE_BACKEND is local: nothing to do (files go to STORAGE_LOCAL_ROOT).")
        return
    origin = current_app.config["PUBLIC_URL"]
    storage.ensure_bucket(default_encryption=True, cors_origins=[origin])
    click.echo(f"Bucket {storage.bucket}: SSE AES256 by default, browser uploads allowed from {origin}.")
