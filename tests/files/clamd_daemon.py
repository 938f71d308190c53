"""A real clamd for the tests: Debian's clamav-daemon on a free port of 127.0.0.1, with our own signatures.

There is no internet for freshclam here, so the signature database is one line written by the tests: the MD5
and size of the 68-byte EICAR test file, named Clinic.Test.EICAR (clamd reports it as
`Clinic.Test.EICAR.UNOFFICIAL`). An .hdb signature matches a whole file, so EICAR is found only when it is the
entire stream, not when it is embedded in other bytes.

clamd runs as whoever starts it: with `User` unset it does not try to change user, so it works both as root
(CI containers) and as an ordinary user, as long as that user can read the temporary folder it is given.
"""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from healthcrm.files.scan import ping

CLAMD_BINARY = os.environ.get("CLAMD_BINARY", "/usr/sbin/clamd")
NOT_INSTALLED = "clamav-daemon is not installed: apt-get install clamav-daemon"
HOST = "127.0.0.1"

EICAR = rb"X5O!P%@AP[4\PZX54(P^)7CC)7}$EICAR-STANDARD-ANTIVIRUS-TEST-FILE!$H+H*"
EICAR_MD5 = "44d88612fea8a8f36de82e1278abb02f"
TEST_SIGNATURE = "Clinic.Test.EICAR"

# With a one-line database clamd answers within a second or two; the margin is for a loaded CI machine.
STARTUP_TIMEOUT_SECONDS = 60.0
STOP_TIMEOUT_SECONDS = 10.0
STREAM_MAX_BYTES = 100 * 1024 * 1024
# Another process may take the free port between our check and clamd's bind: try again on a new one.
START_ATTEMPTS = 3


@dataclass(frozen=True)
class ClamdServer:
    host: str
    port: int
    log_path: Path
    startup_seconds: float


class ClamdStartError(RuntimeError):
    """clamd exited or did not answer PING in time; the message carries the end of its log."""


def clamd_available() -> tuple[bool, str]:
    """Whether a clamd binary can be started here, and if not, why and how to install it."""
    if not os.path.isfile(CLAMD_BINARY) or not os.access(CLAMD_BINARY, os.X_OK):
        return False, f"{NOT_INSTALLED} (no executable {CLAMD_BINARY})"
    return True, ""


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind((HOST, 0))
        return probe.getsockname()[1]


def write_config(directory: Path, port: int, stream_max_bytes: int = STREAM_MAX_BYTES) -> Path:
    """Write the signature database and a clamd.conf listening on HOST:port only (no local socket)."""
    database = directory / "db"
    scratch = directory / "scratch"
    database.mkdir(parents=True, exist_ok=True)
    scratch.mkdir(parents=True, exist_ok=True)
    (database / "test.hdb").write_text(f"{EICAR_MD5}:{len(EICAR)}:{TEST_SIGNATURE}\n")
    conf = directory / "clamd.conf"
    conf.write_text(
        "\n".join(
            [
                f"TCPSocket {port}",
                f"TCPAddr {HOST}",
                "Foreground yes",
                f"DatabaseDirectory {database}",
                f"TemporaryDirectory {scratch}",
                f"LogFile {directory / 'clamd.log'}",
                "LogTime yes",
                f"StreamMaxLength {stream_max_bytes}",
                # The database never changes during a test run: no reloads.
                "SelfCheck 0",
                "",
            ]
        )
    )
    return conf


@contextlib.contextmanager
def run_clamd(directory: Path, stream_max_bytes: int = STREAM_MAX_BYTES) -> Iterator[ClamdServer]:
    """Start clamd with its config in `directory`, wait until it answers PING, and stop it on exit."""
    available, reason = clamd_available()
    if not available:
        raise ClamdStartError(reason)
    directory.mkdir(parents=True, exist_ok=True)
    for attempt in range(1, START_ATTEMPTS + 1):
        port = free_port()
        conf = write_config(directory, port, stream_max_bytes)
        process, startup_seconds = _start(conf, directory / "clamd.out", port)
        if process is not None:
            break
        if attempt == START_ATTEMPTS:
            raise ClamdStartError(f"clamd did not start; its output ends with:\n{_tail(directory)}")
    try:
        yield ClamdServer(HOST, port, directory / "clamd.log", startup_seconds)
    finally:
        _stop(process)


def _start(conf: Path, output: Path, port: int) -> tuple[subprocess.Popen | None, float]:
    """clamd answering on `port`, and how long it took; (None, seconds) if it exited first."""
    started = time.monotonic()
    with output.open("ab") as out:
        process = subprocess.Popen(
            [CLAMD_BINARY, "-c", str(conf)], stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL
        )
    deadline = started + STARTUP_TIMEOUT_SECONDS
    while time.monotonic() < deadline:
        if process.poll() is not None:
            return None, time.monotonic() - started
        if ping(HOST, port, timeout=1.0):
            return process, time.monotonic() - started
        time.sleep(0.05)
    _stop(process)
    raise ClamdStartError(
        f"clamd did not answer PING within {STARTUP_TIMEOUT_SECONDS:g} s; its output ends with:\n"
        f"{_tail(conf.parent)}"
    )


def _stop(process: subprocess.Popen) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=STOP_TIMEOUT_SECONDS)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def _tail(directory: Path, lines: int = 20) -> str:
    texts = []
    for name in ("clamd.out", "clamd.log"):
        path = directory / name
        if path.exists():
            texts.append("\n".join(path.read_text(errors="replace").splitlines()[-lines:]))
    return "\n".join(texts) or "(no output)"
