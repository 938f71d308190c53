"""The WSGI app for gunicorn (`gunicorn wsgi:app`) and `flask --app wsgi`."""

from healthcrm import create_app

app = create_app()
