"""`flask tenant import ARCHIVE`: load a clinic export into an empty database."""

from __future__ import annotations

import click

from .archive import ImportRefused, import_archive


@click.command("import")
@click.argument("archive", type=click.Path(exists=True, dir_okay=False))
def import_command(archive: str) -> None:
    """Load ARCHIVE (a clinic export) into this empty database and its storage, checking every checksum
    first. The rows go in as they were (ids, the audit log and its chain), so `flask audit verify` passes."""
    try:
        counts = import_archive(archive)
    except ImportRefused as refused:
        raise click.ClickException(f"Not imported: {refused}") from refused
    click.echo(f"Imported {sum(counts.values())} rows in {len(counts)} tables.")
