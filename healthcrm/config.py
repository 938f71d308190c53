"""Configuration from environment variables, with embedded defaults for one machine.

Every setting is documented in the README. The embedded defaults (SQLite, local files, inline jobs,
an outbox folder) need nothing installed; production sets the variables and refuses to start without
a real SECRET_KEY.
"""

from __future__ import annotations

import os
import secrets
from datetime import timedelta
from pathlib import Path

STAFF_IDLE_MINUTES = 15
PATIENT_IDLE_MINUTES = 30
SESSION_ABSOLUTE_HOURS = 12
PASSWORD_RESET_MINUTES = 30
INVITATION_DAYS = 7
# Waits before the 2nd and 3rd try of a failed job (3 tries in all).
JOB_RETRY_INTERVALS_SECONDS = [30, 300]
MAX_CONTENT_BYTES = 50 * 1024 * 1024
LOGIN_LIMIT_PER_ACCOUNT = "5 per 15 minutes"
LOGIN_LIMIT_PER_CLIENT = "30 per 15 minutes"
# A browser that signed in successfully keeps a signed device cookie this long: the per-account sign-in
# limit then counts its tries apart from everyone else's, so an attacker cannot lock the owner out.
DEVICE_COOKIE_DAYS = 180


class ConfigError(RuntimeError):
    """The environment does not describe an app that may start."""


def _bool(value: str | None, default: bool = False) -> bool:
    if value is None or value == "":
        return default
    return value.strip().lower() in {"1", "true", "yes", "on"}


def _secret_key(instance_path: Path, env: str) -> str:
    key = os.environ.get("SECRET_KEY", "")
    if key:
        return key
    if env == "production":
        raise ConfigError("SECRET_KEY must be set in production (APP_ENV=production).")
    # Embedded default: generate once, keep it in instance/ so sessions survive restarts.
    path = instance_path / "secret_key"
    if not path.exists():
        instance_path.mkdir(parents=True, exist_ok=True)
        path.write_text(secrets.token_hex(32))
        path.chmod(0o600)
    return path.read_text().strip()


def load_config(instance_path: str, overrides: dict | None = None) -> dict:
    """Build the Flask config mapping from the environment and optional overrides (tests)."""
    overrides = dict(overrides or {})
    env = overrides.get("APP_ENV") or os.environ.get("APP_ENV", "development")
    instance = Path(instance_path)
    instance.mkdir(parents=True, exist_ok=True)
    secret_key = overrides.pop("SECRET_KEY", None) or _secret_key(instance, env)
    database_url = os.environ.get("DATABASE_URL") or f"sqlite:///{instance / 'healthcrm.db'}"
    redis_url = os.environ.get("REDIS_URL", "")
    if env == "production":
        if database_url.startswith("sqlite"):
            raise ConfigError("Production needs DATABASE_URL pointing at PostgreSQL.")
        if not redis_url:
            raise ConfigError("Production needs REDIS_URL: jobs, rate limits and queues are shared.")
    local_dev = env in {"development", "testing"}
    config = {
        "APP_ENV": env,
        "TESTING": env == "testing",
        "SECRET_KEY": secret_key,
        "SQLALCHEMY_DATABASE_URI": database_url,
        "SQLALCHEMY_ENGINE_OPTIONS": {"pool_pre_ping": True},
        # The table owner's connection, for `flask db upgrade` only (see `flask db-roles`).
        "MIGRATION_DATABASE_URL": os.environ.get("MIGRATION_DATABASE_URL", ""),
        "REDIS_URL": redis_url,
        "RQ_QUEUE": os.environ.get("RQ_QUEUE", "healthcrm"),
        "JOB_RETRY_INTERVALS": JOB_RETRY_INTERVALS_SECONDS,
        "STORAGE_BACKEND": os.environ.get("STORAGE_BACKEND", "local"),
        "STORAGE_LOCAL_ROOT": os.environ.get("STORAGE_LOCAL_ROOT", str(instance / "storage")),
        # The local backend has no archive tiers; a restore of an "archived" file is ready after this long.
        # A JSON file replacing some or all of the default S3 prices (healthcrm/storage_cost/prices.py).
        "STORAGE_PRICES_FILE": os.environ.get("STORAGE_PRICES_FILE", ""),
        "STORAGE_LOCAL_RESTORE_SECONDS": int(os.environ.get("STORAGE_LOCAL_RESTORE_SECONDS", "60")),
        "STORAGE_RESTORE_DAYS": int(os.environ.get("STORAGE_RESTORE_DAYS", "7")),
        "STORAGE_SWEEP_GRACE_HOURS": float(os.environ.get("STORAGE_SWEEP_GRACE_HOURS", "24")),
        "STORAGE_SWEEP_SAMPLE": int(os.environ.get("STORAGE_SWEEP_SAMPLE", "20")),
        "S3_BUCKET": os.environ.get("S3_BUCKET", ""),
        "S3_ENDPOINT_URL": os.environ.get("S3_ENDPOINT_URL") or None,
        "S3_REGION": os.environ.get("S3_REGION", "us-east-1"),
        # Attachments: the largest file, the clinic's default storage quota, the virus scanner (optional).
        "ATTACHMENT_MAX_BYTES": int(os.environ.get("ATTACHMENT_MAX_BYTES", str(2 * 1024**3))),
        "TENANT_STORAGE_QUOTA_BYTES": int(os.environ.get("TENANT_STORAGE_QUOTA_BYTES", str(100 * 1024**3))),
        "CLAMD_HOST": os.environ.get("CLAMD_HOST", ""),
        "CLAMD_PORT": int(os.environ.get("CLAMD_PORT", "3310")),
        # The Ed25519 key that signs audit checkpoints: kept outside the database (and its backups), so
        # whoever can rewrite the database cannot write a checkpoint that agrees with the rewrite.
        "AUDIT_SIGNING_KEY_FILE": os.environ.get(
            "AUDIT_SIGNING_KEY_FILE", str(instance / "audit-signing.key")
        ),
        "AUDIT_CHECKPOINT_LOCK_DAYS": int(os.environ.get("AUDIT_CHECKPOINT_LOCK_DAYS", "2557")),
        "MAIL_BACKEND": os.environ.get("MAIL_BACKEND")
        or ("smtp" if os.environ.get("SMTP_HOST") else "outbox"),
        "MAIL_OUTBOX_DIR": os.environ.get("MAIL_OUTBOX_DIR", str(instance / "outbox")),
        "MAIL_FROM": os.environ.get("MAIL_FROM", "HealthCRM <no-reply@healthcrm.local>"),
        "SMTP_HOST": os.environ.get("SMTP_HOST", ""),
        "SMTP_PORT": int(os.environ.get("SMTP_PORT", "587")),
        "SMTP_USERNAME": os.environ.get("SMTP_USERNAME", ""),
        "SMTP_PASSWORD": os.environ.get("SMTP_PASSWORD", ""),
        "SMTP_STARTTLS": _bool(os.environ.get("SMTP_STARTTLS"), default=True),
        "SMTP_SSL": _bool(os.environ.get("SMTP_SSL")),
        "PUBLIC_URL": os.environ.get("PUBLIC_URL", "http://127.0.0.1:5000").rstrip("/"),
        "TRUST_PROXY_COUNT": int(os.environ.get("TRUST_PROXY_COUNT", "0")),
        "STAFF_IDLE_TIMEOUT": timedelta(
            minutes=int(os.environ.get("STAFF_IDLE_MINUTES", STAFF_IDLE_MINUTES))
        ),
        "PATIENT_IDLE_TIMEOUT": timedelta(
            minutes=int(os.environ.get("PATIENT_IDLE_MINUTES", PATIENT_IDLE_MINUTES))
        ),
        "SESSION_ABSOLUTE_TIMEOUT": timedelta(hours=SESSION_ABSOLUTE_HOURS),
        # How often a portal page asks for the unread-notification badge (seconds).
        "NOTIFICATION_POLL_SECONDS": int(os.environ.get("NOTIFICATION_POLL_SECONDS", "20")),
        "MAX_CONTENT_LENGTH": MAX_CONTENT_BYTES,
        "SESSION_COOKIE_NAME": "hc_flash",
        "SESSION_COOKIE_HTTPONLY": True,
        "SESSION_COOKIE_SAMESITE": "Lax",
        "SESSION_COOKIE_SECURE": not local_dev,
        "AUTH_COOKIE_NAME": "hc_session",
        "WTF_CSRF_TIME_LIMIT": None,
        "WTF_CSRF_SSL_STRICT": False,
        "RATELIMIT_STORAGE_URI": redis_url or "memory://",
        # Storage errors as limits' StorageError (web.py answers 503), and soon: a dead Redis must not
        # hold a sign-in for the default socket timeout.
        "RATELIMIT_STORAGE_OPTIONS": {"wrap_exceptions": True}
        | ({"socket_connect_timeout": 2, "socket_timeout": 2} if redis_url else {}),
        "RATELIMIT_SWALLOW_ERRORS": False,
        "DEVICE_COOKIE_NAME": "hc_device",
        "DEVICE_COOKIE_DAYS": DEVICE_COOKIE_DAYS,
        "RATELIMIT_HEADERS_ENABLED": False,
        "PREFERRED_URL_SCHEME": "http" if local_dev else "https",
    }
    config.update(overrides)
    if env == "production":
        _require_real_mail(config)
    return config


def _require_real_mail(config: dict) -> None:
    # The outbox folder is listed on an admin page: in production it would show every reset and
    # invitation link to the clinic's admins, and the person asking would never get the email.
    if config["MAIL_BACKEND"] != "smtp" or not config["SMTP_HOST"]:
        raise ConfigError(
            "Production needs email sent by SMTP: set SMTP_HOST (and MAIL_BACKEND=smtp, or leave it unset)."
        )
