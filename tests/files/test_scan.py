"""Virus scanning against a real clamd (tests/files/clamd_daemon.py) and a few fake ones for its failures."""

from __future__ import annotations

import contextlib
import hashlib
import io
import random
import socket
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from healthcrm.config import ConfigError
from healthcrm.files.scan import (
    DEFAULT_CLAMD_PORT,
    SCAN_CHUNK_BYTES,
    ClamdScanner,
    ScanError,
    ScanResult,
    ping,
    scan_stream,
    scanner_from_config,
)
from tests.files.clamd_daemon import (
    EICAR,
    EICAR_MD5,
    HOST,
    TEST_SIGNATURE,
    ClamdServer,
    clamd_available,
    free_port,
    run_clamd,
)

MiB = 1024 * 1024
BIG_FILE_BYTES = 20 * MiB
SMALL_PDF = (
    b"%PDF-1.4\n"
    b"1 0 obj << /Type /Catalog /Pages 2 0 R >> endobj\n"
    b"2 0 obj << /Type /Pages /Kids [3 0 R] /Count 1 >> endobj\n"
    b"3 0 obj << /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] >> endobj\n"
    b"trailer << /Root 1 0 R >>\n"
    b"%%EOF\n"
)


class GeneratedFile(io.RawIOBase):
    """`size` pseudo-random bytes made on demand, so a 20 MB upload never exists in memory at once."""

    def __init__(self, size: int, seed: int = 1) -> None:
        self.remaining = size
        self.sent = 0
        self.largest_read = 0
        self.random = random.Random(seed)

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        count = min(len(buffer), self.remaining)
        buffer[:count] = self.random.randbytes(count)
        self.remaining -= count
        self.sent += count
        self.largest_read = max(self.largest_read, count)
        return count


@pytest.fixture
def closed_port() -> int:
    """A port on 127.0.0.1 that nothing listens on."""
    return free_port()


@pytest.fixture
def fake_clamd() -> Iterator[Callable[[bytes], int]]:
    """Start a server that answers one INSTREAM request with the given bytes; returns its port."""
    started: list[tuple[socket.socket, threading.Thread]] = []

    def start(reply: bytes) -> int:
        server = socket.create_server((HOST, 0))
        server.settimeout(5)

        def answer() -> None:
            with contextlib.suppress(OSError), server.accept()[0] as conn:
                conn.settimeout(5)
                request = b""
                # Read up to the zero-length chunk: closing with unread bytes would reset the connection.
                while not request.endswith(b"\0\0\0\0") and (data := conn.recv(65536)):
                    request += data
                conn.sendall(reply)

        thread = threading.Thread(target=answer)
        thread.start()
        started.append((server, thread))
        return server.getsockname()[1]

    yield start
    for server, thread in started:
        thread.join(timeout=10)
        server.close()


def test_eicar_sample_is_the_signature_in_the_database() -> None:
    assert len(EICAR) == 68
    assert hashlib.md5(EICAR, usedforsecurity=False).hexdigest() == EICAR_MD5


def test_eicar_is_found(clamd_server: ClamdServer) -> None:
    result = scan_stream(io.BytesIO(EICAR), clamd_server.host, clamd_server.port)

    assert result.clean is False
    assert TEST_SIGNATURE in result.signature


def test_eicar_sent_in_small_chunks_is_still_one_file(clamd_server: ClamdServer) -> None:
    result = scan_stream(io.BytesIO(EICAR), clamd_server.host, clamd_server.port, chunk_bytes=10)

    assert not result.clean
    assert TEST_SIGNATURE in result.signature


def test_eicar_inside_a_larger_file_is_not_this_signature(clamd_server: ClamdServer) -> None:
    # The .hdb signature is the MD5 of a whole file: EICAR must be the whole stream to match it.
    result = scan_stream(io.BytesIO(SMALL_PDF + EICAR), clamd_server.host, clamd_server.port)

    assert result == ScanResult(clean=True, signature=None)


def test_clean_pdf_is_clean(clamd_server: ClamdServer) -> None:
    result = scan_stream(io.BytesIO(SMALL_PDF), clamd_server.host, clamd_server.port)

    assert result == ScanResult(clean=True, signature=None)


def test_empty_file_is_clean(clamd_server: ClamdServer) -> None:
    assert scan_stream(io.BytesIO(b""), clamd_server.host, clamd_server.port).clean


def test_scan_starts_at_the_current_position(clamd_server: ClamdServer) -> None:
    upload = io.BytesIO(SMALL_PDF + EICAR)
    upload.seek(len(SMALL_PDF))

    assert not scan_stream(upload, clamd_server.host, clamd_server.port).clean


def test_large_file_is_streamed_in_chunks(clamd_server: ClamdServer) -> None:
    upload = GeneratedFile(BIG_FILE_BYTES)

    result = scan_stream(upload, clamd_server.host, clamd_server.port)

    assert result.clean
    assert upload.sent == BIG_FILE_BYTES
    assert upload.largest_read <= SCAN_CHUNK_BYTES


def test_ping(clamd_server: ClamdServer) -> None:
    assert ping(clamd_server.host, clamd_server.port, timeout=5)


def test_ping_without_clamd_is_false(closed_port: int) -> None:
    assert ping(HOST, closed_port, timeout=1) is False


def test_connection_refused_says_where(closed_port: int) -> None:
    refused = rf"cannot connect to clamd at {HOST}:{closed_port}: connection refused"
    with pytest.raises(ScanError, match=refused):
        scan_stream(io.BytesIO(SMALL_PDF), HOST, closed_port, timeout=2)


def test_clamd_that_never_answers_times_out() -> None:
    # A listening socket that nobody accepts on: the connection is queued, the request fits in the kernel's
    # buffers, and the verdict never comes.
    with socket.create_server((HOST, 0)) as silent:
        port = silent.getsockname()[1]
        with pytest.raises(ScanError, match=r"gave no verdict within 0\.5 s"):
            scan_stream(io.BytesIO(SMALL_PDF), HOST, port, timeout=0.5)


@pytest.mark.parametrize(
    ("reply", "message"),
    [
        (b"HELLO\0", r"unexpected reply from clamd at .*: 'HELLO'"),
        (b"stream: FOUND\0", r"unexpected reply"),
        (b"", r"closed the connection without a verdict"),
        (b"stream: Can't allocate memory ERROR\0", r"could not scan the file: Can't allocate memory"),
    ],
)
def test_unexpected_replies_are_scan_errors(fake_clamd, reply: bytes, message: str) -> None:
    port = fake_clamd(reply)

    with pytest.raises(ScanError, match=message):
        scan_stream(io.BytesIO(SMALL_PDF), HOST, port, timeout=5)


def test_file_over_the_stream_limit_is_refused(tmp_path: Path) -> None:
    available, reason = clamd_available()
    if not available:
        pytest.skip(reason)
    with run_clamd(tmp_path / "clamd", stream_max_bytes=MiB) as small_clamd:
        with pytest.raises(ScanError, match="INSTREAM size limit exceeded"):
            scan_stream(GeneratedFile(4 * MiB), small_clamd.host, small_clamd.port, chunk_bytes=256 * 1024)

        # A refused file does not break the daemon for the next one.
        assert scan_stream(io.BytesIO(SMALL_PDF), small_clamd.host, small_clamd.port).clean


def test_scanner_from_config_without_host_is_none() -> None:
    assert scanner_from_config({}) is None
    assert scanner_from_config({"CLAMD_HOST": "", "CLAMD_PORT": 3310}) is None


def test_scanner_from_config_defaults_the_port() -> None:
    default = scanner_from_config({"CLAMD_HOST": "clamav"})
    assert default == ClamdScanner(host="clamav", port=DEFAULT_CLAMD_PORT)
    assert scanner_from_config({"CLAMD_HOST": "clamav", "CLAMD_PORT": "3311"}).port == 3311


@pytest.mark.parametrize("port", ["clam", "0", "70000"])
def test_scanner_from_config_rejects_a_bad_port(port: str) -> None:
    with pytest.raises(ConfigError, match="CLAMD_PORT"):
        scanner_from_config({"CLAMD_HOST": "clamav", "CLAMD_PORT": port})


def test_scanner_from_config_scans(clamd_server: ClamdServer) -> None:
    scan = scanner_from_config({"CLAMD_HOST": clamd_server.host, "CLAMD_PORT": str(clamd_server.port)})

    assert scan(io.BytesIO(SMALL_PDF)).clean
    assert not scan(io.BytesIO(EICAR)).clean
