"""HealthCRM: the application factory. It only wires: config, extensions, blueprints, hooks, commands."""

from __future__ import annotations

import logging
from pathlib import Path

from flask import Flask
from jinja2 import StrictUndefined
from sqlalchemy import event
from sqlalchemy.engine import Engine
from werkzeug.middleware.proxy_fix import ProxyFix

from .config import load_config
from .extensions import csrf, db, htmx, limiter, login_manager, migrate


def create_app(overrides: dict | None = None) -> Flask:
    instance_path = (overrides or {}).get("INSTANCE_PATH") or str(Path.cwd() / "instance")
    app = Flask(__name__, instance_path=instance_path, instance_relative_config=False)
    app.config.from_mapping(load_config(instance_path, overrides))
    app.jinja_env.undefined = StrictUndefined
    logging.basicConfig(level=logging.INFO)

    if app.config["TRUST_PROXY_COUNT"]:
        # Only behind our own proxies: otherwise X-Forwarded-For is whatever the client says.
        n = app.config["TRUST_PROXY_COUNT"]
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=n, x_proto=n, x_host=n)  # type: ignore[method-assign]

    # Request ids first, so that even a request refused by CSRF or size checks has one in its logs.
    from .web import start_request

    app.before_request(start_request)
    register_extensions(app)
    register_blueprints(app)
    register_hooks(app)
    register_commands(app)
    return app


def register_extensions(app: Flask) -> None:
    db.init_app(app)
    migrate.init_app(app, db, directory=str(Path(__file__).resolve().parent.parent / "migrations"))
    csrf.init_app(app)
    htmx.init_app(app)
    limiter.init_app(app)
    login_manager.init_app(app)
    # Import every model so metadata (create_all, Alembic) sees them all.
    from . import counters as _counters  # noqa: F401
    from .accounts import models as _accounts  # noqa: F401
    from .audit import models as _audit  # noqa: F401
    from .files import models as _files  # noqa: F401
    from .files import tasks as _file_tasks  # noqa: F401
    from .jobs import models as _jobs  # noqa: F401
    from .jobs import tasks as _tasks  # noqa: F401
    from .patients import models as _patients  # noqa: F401
    from .records import models as _records  # noqa: F401
    from .records import search as _search  # noqa: F401  (search index DDL and its session hook)
    from .sharing import export_tasks as _sharing_export_tasks  # noqa: F401
    from .sharing import models as _sharing  # noqa: F401
    from .sharing import tasks as _sharing_tasks  # noqa: F401


@event.listens_for(Engine, "connect")
def _sqlite_pragmas(dbapi_connection, _record) -> None:
    # WAL lets a reader and a writer work at once (inline jobs write while a request reads).
    if type(dbapi_connection).__module__.startswith("sqlite3"):
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA busy_timeout=5000")
        # 64 MB of page cache (default 2 MB): a search that scans the records list stays in memory.
        cursor.execute("PRAGMA cache_size=-65536")
        cursor.close()


def register_blueprints(app: Flask) -> None:
    from .accounts.views import bp as accounts_bp
    from .audit.views import bp as audit_bp
    from .files.attachment_views import bp as attachments_bp
    from .files.views import bp as files_bp
    from .jobs.views import bp as jobs_bp
    from .mail.views import bp as mail_bp
    from .patients.views import bp as patients_bp
    from .portal.views import bp as portal_bp
    from .records.lab_views import bp as labs_bp
    from .records.views import bp as records_bp
    from .sharing.provider_views import bp as provider_bp
    from .sharing.views import bp as sharing_bp
    from .web import bp as web_bp

    for blueprint in (
        web_bp,
        accounts_bp,
        patients_bp,
        records_bp,
        labs_bp,
        portal_bp,
        audit_bp,
        jobs_bp,
        mail_bp,
        files_bp,
        attachments_bp,
        provider_bp,
        sharing_bp,
    ):
        app.register_blueprint(blueprint)


def register_hooks(app: Flask) -> None:
    from . import web

    web.install(app)


def register_commands(app: Flask) -> None:
    from .audit.cli import audit_cli
    from .demo.cli import demo_command
    from .files.cli import files_cli
    from .jobs.periodic import periodic_cli
    from .records.icd10 import icd10_cli

    app.cli.add_command(audit_cli)
    app.cli.add_command(demo_command)
    app.cli.add_command(files_cli)
    app.cli.add_command(periodic_cli)
    app.cli.add_command(icd10_cli)
