"""Extensions are created here at import and bound to the app in the factory."""

import ipaddress

from flask import request
from flask_htmx import HTMX
from flask_limiter import Limiter
from flask_login import LoginManager
from flask_migrate import Migrate
from flask_sqlalchemy import SQLAlchemy
from flask_wtf import CSRFProtect
from sqlalchemy import MetaData
from sqlalchemy.orm import DeclarativeBase


class Base(DeclarativeBase):
    # Named constraints so Alembic batch migrations on SQLite can alter them.
    metadata = MetaData(
        naming_convention={
            "ix": "ix_%(column_0_label)s",
            "uq": "uq_%(table_name)s_%(column_0_name)s",
            "ck": "ck_%(table_name)s_%(constraint_name)s",
            "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
            "pk": "pk_%(table_name)s",
        }
    )


# Rows stay loaded after a commit: services audit and commit once, then the page renders what they
# returned; expiring on commit would reload every row, one query each (N+1).
db = SQLAlchemy(model_class=Base, session_options={"expire_on_commit": False})


def include_in_autogenerate(obj, name, type_, reflected, compare_to) -> bool:
    """Alembic autogenerate leaves alone PostgreSQL's trigram search indexes (`*_trgm`): they exist only
    as DDL (migrations and `healthcrm.records.search`), since the models cannot express them."""
    return not (type_ == "index" and name and name.endswith("_trgm"))


def include_name_in_autogenerate(name, type_, parent_names) -> bool:
    """Nor does it reflect SQLite's full-text search tables (`record_search` and its shadow tables)."""
    return not (type_ == "table" and name and name.startswith("record_search"))


migrate = Migrate(
    render_as_batch=True,
    compare_type=True,
    include_object=include_in_autogenerate,
    include_name=include_name_in_autogenerate,
)
login_manager = LoginManager()
csrf = CSRFProtect()
htmx = HTMX()
IPV6_CLIENT_PREFIX = 64


def client_bucket() -> str:
    """The rate-limit bucket of the client: its IPv4 address, or its IPv6 /64.

    One IPv6 subscriber (a home, a phone, a cloud VM) gets a whole /64 and can pick any address in it, so
    per-address buckets would give it 2**64 of them. remote_addr is the peer address; ProxyFix rewrites
    it only when TRUST_PROXY_COUNT says a proxy is ours, so a forged X-Forwarded-For cannot pick a bucket.
    """
    address = request.remote_addr or ""
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return address
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            return str(ip.ipv4_mapped)
        return str(ipaddress.ip_network(f"{ip}/{IPV6_CLIENT_PREFIX}", strict=False))
    return str(ip)


# Storage errors are not swallowed (that would mean no limits while Redis is down): web.py answers 503.
limiter = Limiter(key_func=client_bucket, default_limits=[], swallow_errors=False)
