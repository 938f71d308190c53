"""`flask storage …`: the storage cost area's commands (each in its own module, added to this group in
healthcrm/__init__.py)."""

from __future__ import annotations

from flask.cli import AppGroup

storage_cli = AppGroup("storage", help="Storage cost and lifecycle: metrics, lifecycle rules, restores.")
