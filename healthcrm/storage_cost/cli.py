"""`flask storage`: the storage cost area's commands.

(The lifecycle helper owns this group; until it lands here, it holds only the sweeper's command.)
"""

from __future__ import annotations

from flask.cli import AppGroup

from .sweeper import sweep_command

storage_cli = AppGroup("storage", help="Storage classes, lifecycle rules, restores and the sweeper.")
storage_cli.add_command(sweep_command)
