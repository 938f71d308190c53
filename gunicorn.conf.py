"""gunicorn settings: `gunicorn -c gunicorn.conf.py wsgi:app` (the README's production command).

The access log never shows a share, reset or invitation token: they are in URL paths (`/s/<token>`,
`/reset/<token>`, `/invitation/<token>`), and a log is read by more people, and kept longer, than the
tokens are meant to be. Proxies and load balancers in front must do the same in their own logs.
"""

import os

from gunicorn.glogging import Logger

from healthcrm.web import redact_tokens

bind = os.environ.get("GUNICORN_BIND", "0.0.0.0:8000")
workers = int(os.environ.get("WEB_CONCURRENCY", "4"))
accesslog = os.environ.get("GUNICORN_ACCESS_LOG", "-")
# The combined format without the Referer (a page address can hold a token too), plus our request id.
access_log_format = '%(h)s %(l)s %(u)s %(t)s "%(r)s" %(s)s %(b)s "%(a)s" %({x-request-id}o)s'


class RedactingLogger(Logger):
    """gunicorn's logger, with tokens redacted from every access-log atom (request line, path, query,
    headers) before the line is formatted."""

    def atoms(self, resp, req, environ, request_time):
        found = super().atoms(resp, req, environ, request_time)
        return {
            key: redact_tokens(value) if isinstance(value, str) else value for key, value in found.items()
        }


logger_class = RedactingLogger
