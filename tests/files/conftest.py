"""Fixtures for the files area: one real clamd for the session, skipped with the reason when not installed."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest
from moto.server import ThreadedMotoServer

from tests.files.clamd_daemon import ClamdServer, clamd_available, run_clamd


@pytest.fixture(scope="session")
def clamd_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ClamdServer]:
    """Debian's clamd on a free port of 127.0.0.1, knowing only the Clinic.Test.EICAR signature."""
    available, reason = clamd_available()
    if not available:
        pytest.skip(reason)
    with run_clamd(tmp_path_factory.mktemp("clamd")) as server:
        yield server


@pytest.fixture(scope="session")
def moto_url() -> Iterator[str]:
    """moto's S3 as a real HTTP server on 127.0.0.1 for the whole session, with fake credentials."""
    with pytest.MonkeyPatch.context() as patch:
        for name, value in {
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",
            "AWS_SESSION_TOKEN": "testing",
            "AWS_DEFAULT_REGION": "us-east-1",
            "AWS_CONFIG_FILE": os.devnull,
            "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
        }.items():
            patch.setenv(name, value)
        patch.delenv("AWS_PROFILE", raising=False)
        server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
        server.start()
        host, port = server.get_host_and_port()
        try:
            yield f"http://{host}:{port}"
        finally:
            server.stop()
