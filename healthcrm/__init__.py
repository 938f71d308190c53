"""HealthCRM: the application factory. It only wires: config, extensions, blueprints, hooks, commands."""

from __future__ import annotations

import logging
from pathlib import Path

from flask import Flask
from jinja2 import StrictUndefined
from sqlalchemy import event
from sqlalchemy.engine import Engine
from werkzeug.middleware.proxy_fix import ProxyFix

from . import counters as counters_module
from . import web
from .accounts import models as accounts_module
from .accounts import registration as registration_module
from .accounts.cli import tenant_cli
from .accounts.registration_views import bp as registration_bp
from .accounts.token_views import api_bp as api_account_bp
from .accounts.token_views import bp as api_tokens_bp
from .accounts.views import bp as accounts_bp
from .audit import models as audit_module
from .audit.alert_views import bp as audit_alerts_bp
from .audit.cli import audit_cli
from .audit.disclosure_views import bp as disclosures_bp
from .audit.portal_views import bp as portal_access_bp
from .audit.retention_views import bp as retention_bp
from .audit.views import bp as audit_bp
from .care import models as care_module
from .care.change_views import bp as care_changes_bp
from .care.inbox_views import bp as care_inbox_bp
from .care.notification_views import bp as staff_notifications_bp
from .care.report_views import bp as care_report_bp
from .care.settings_views import bp as care_settings_bp
from .care.task_views import bp as care_tasks_bp
from .config import load_config
from .dbroles import db_roles_command
from .demo.cli import demo_command
from .extensions import csrf, db, htmx, limiter, login_manager, migrate
from .files import models as files_module
from .files import tasks as file_tasks_module
from .files.attachment_views import bp as attachments_bp
from .files.cli import files_cli
from .files.document_views import portal_bp as portal_documents_bp
from .files.document_views import staff_bp as patient_documents_bp
from .files.views import bp as files_bp
from .jobs import models as jobs_module
from .jobs import tasks as tasks_module
from .jobs.periodic import periodic_cli
from .jobs.views import bp as jobs_bp
from .mail.views import bp as mail_bp
from .patient_export.views import portal_bp as portal_export_bp
from .patient_export.views import staff_bp as patient_export_bp
from .patients import models as patients_module
from .patients.views import bp as patients_bp
from .portal import models as portal_module
from .portal import tasks as portal_tasks_module
from .portal.messages import handlers as message_handlers_module
from .portal.messages import models as messages_module
from .portal.messages.views import bp as portal_messages_bp
from .portal.notification_views import bp as portal_notifications_bp
from .portal.profile import handlers as profile_handlers_module
from .portal.profile import models as profile_module
from .portal.profile.views import bp as portal_profile_bp
from .portal.timeline_views import bp as portal_timeline_bp
from .portal.views import bp as portal_bp
from .records import models as records_module
from .records import result_holds as result_holds_module
from .records import search as search_module
from .records.hold_views import bp as result_holds_bp
from .records.icd10 import icd10_cli
from .records.lab_views import bp as labs_bp
from .records.portal_views import bp as portal_records_bp
from .records.views import bp as records_bp
from .retention import models as retention_module
from .retention import services as retention_services_module
from .retention.views import bp as retention_purge_bp
from .scheduling import handlers as scheduling_handlers_module
from .scheduling import models as scheduling_module
from .scheduling import waitlist as scheduling_waitlist_module
from .scheduling.portal_views import bp as portal_appointments_bp
from .scheduling.staff_views import bp as schedule_bp
from .scheduling.waitlist_views import bp as portal_waitlist_bp
from .selfcare import handlers as selfcare_handlers_module
from .selfcare import models as selfcare_module
from .selfcare.portal_views import bp as portal_selfcare_bp
from .selfcare.staff_views import bp as care_selfcare_bp
from .sharing import export_tasks as sharing_export_tasks_module
from .sharing import feed as sharing_feed_module
from .sharing import models as sharing_module
from .sharing import tasks as sharing_tasks_module
from .sharing.provider_views import bp as provider_bp
from .sharing.views import bp as sharing_bp
from .storage_cost import models as storage_cost_module
from .storage_cost import restore_models as storage_restore_models_module
from .storage_cost import restore_tasks as storage_restore_tasks_module
from .storage_cost import tags as storage_tags_module
from .storage_cost import tasks as storage_cost_tasks_module
from .storage_cost.api_views import bp as storage_api_bp
from .storage_cost.cli import storage_cli
from .storage_cost.lifecycle_views import bp as storage_lifecycle_bp
from .storage_cost.restore_views import bp as storage_restores_bp
from .storage_cost.views import bp as storage_bp
from .tenant_export import models as tenant_export_module
from .tenant_export import schedule as tenant_export_schedule_module
from .tenant_export.cli import import_command as tenant_import_command
from .tenant_export.views import bp as tenant_export_bp
from .web import bp as web_bp
from .web import start_request

# Imported for what they register: every model (so metadata, create_all and Alembic see them all), the
# registered job functions, and the search index's DDL and session hook.
MODULES_THAT_REGISTER = (
    counters_module,
    accounts_module,
    registration_module,
    care_module,
    portal_module,
    portal_tasks_module,
    messages_module,
    message_handlers_module,
    audit_module,
    files_module,
    file_tasks_module,
    jobs_module,
    tasks_module,
    patients_module,
    records_module,
    retention_module,
    retention_services_module,
    result_holds_module,
    search_module,
    sharing_export_tasks_module,
    sharing_feed_module,
    sharing_module,
    sharing_tasks_module,
    selfcare_module,
    selfcare_handlers_module,
    profile_module,
    profile_handlers_module,
    scheduling_module,
    scheduling_handlers_module,
    scheduling_waitlist_module,
    tenant_export_module,
    tenant_export_schedule_module,
    storage_cost_module,
    storage_tags_module,
    storage_restore_models_module,
    storage_restore_tasks_module,
    storage_cost_tasks_module,
)


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

    for blueprint in (
        web_bp,
        accounts_bp,
        registration_bp,
        patients_bp,
        records_bp,
        labs_bp,
        portal_records_bp,
        result_holds_bp,
        portal_bp,
        portal_timeline_bp,
        audit_bp,
        audit_alerts_bp,
        portal_access_bp,
        disclosures_bp,
        retention_bp,
        retention_purge_bp,
        portal_export_bp,
        tenant_export_bp,
        patient_export_bp,
        jobs_bp,
        mail_bp,
        files_bp,
        attachments_bp,
        portal_documents_bp,
        patient_documents_bp,
        provider_bp,
        sharing_bp,
        portal_messages_bp,
        care_inbox_bp,
        portal_selfcare_bp,
        care_selfcare_bp,
        care_tasks_bp,
        care_settings_bp,
        care_report_bp,
        portal_notifications_bp,
        portal_profile_bp,
        care_changes_bp,
        schedule_bp,
        portal_appointments_bp,
        portal_waitlist_bp,
        # personal API tokens and the staff's notifications (issue 14)
        api_tokens_bp,
        api_account_bp,
        staff_notifications_bp,
        storage_lifecycle_bp,
        storage_restores_bp,
        storage_bp,
        storage_api_bp,
    ):
        app.register_blueprint(blueprint)


def register_hooks(app: Flask) -> None:

    web.install(app)


def register_commands(app: Flask) -> None:

    app.cli.add_command(audit_cli)
    app.cli.add_command(db_roles_command)
    tenant_cli.add_command(tenant_import_command)
    app.cli.add_command(tenant_cli)
    app.cli.add_command(demo_command)
    app.cli.add_command(files_cli)
    app.cli.add_command(periodic_cli)
    app.cli.add_command(icd10_cli)
    app.cli.add_command(storage_cli)
