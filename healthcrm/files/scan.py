"""Virus scanning of attachments by clamd, ClamAV's daemon, over TCP.

The client speaks clamd's INSTREAM protocol (man 8 clamd) itself: send `zINSTREAM\\0`, then the file in
chunks, each prefixed by its length as 4 big-endian bytes, then a zero-length chunk; clamd answers
`stream: OK\\0`, `stream: <signature> FOUND\\0` or `<reason> ERROR\\0`. It is hand-written rather than taken
from the `clamd` package on PyPI because that package has been unmaintained since 2014, and the protocol is
these few lines.

Files are sent in chunks of SCAN_CHUNK_BYTES, so scanning a 50 MB DICOM holds one chunk in memory, not the
whole file. clamd refuses a stream longer than its `StreamMaxLength` (25 MB in Debian's clamd.conf): set it at
least as large as the largest upload the app accepts, or those files cannot be scanned (ScanError).
"""

from __future__ import annotations

import re
import socket
import struct
from collections.abc import Mapping
from dataclasses import dataclass
from typing import IO, Any

from ..config import ConfigError

DEFAULT_CLAMD_PORT = 3310
SCAN_CHUNK_BYTES = 1024 * 1024
# Waiting for the verdict includes clamd's scan of the whole file, so this is generous.
SCAN_TIMEOUT_SECONDS = 60.0
PING_TIMEOUT_SECONDS = 5.0
# clamd's replies are one short line; a longer one is not clamd.
MAX_REPLY_BYTES = 4096
# clamd reads chunk lengths as unsigned 32-bit integers.
MAX_CHUNK_BYTES = 2**32 - 1

_CHUNK_LENGTH = struct.Struct(">I")
_END_OF_STREAM = _CHUNK_LENGTH.pack(0)
_STREAM_PREFIX = "stream: "
_SIZE_LIMIT_REPLY = "INSTREAM size limit exceeded"
_FOUND_REPLY = re.compile(r"stream: (?P<signature>\S.*) FOUND")


@dataclass(frozen=True)
class ScanResult:
    """clamd's verdict on one file: clean, or infected with the named signature."""

    clean: bool
    signature: str | None = None


class ScanError(Exception):
    """No verdict: clamd unreachable, too slow, over its size limit, or answering something unexpected."""


def scan_stream(
    fileobj: IO[bytes],
    host: str,
    port: int,
    timeout: float = SCAN_TIMEOUT_SECONDS,
    chunk_bytes: int = SCAN_CHUNK_BYTES,
) -> ScanResult:
    """Send `fileobj`, from its current position to its end, to clamd at host:port and return the verdict.

    `timeout` bounds each network step (connecting, sending one chunk, waiting for the verdict), not the whole
    scan. Raises ScanError when no verdict can be had; errors reading `fileobj` itself are not caught.
    """
    if not 0 < chunk_bytes <= MAX_CHUNK_BYTES:
        raise ValueError(f"chunk_bytes must be between 1 and {MAX_CHUNK_BYTES}, not {chunk_bytes}")
    where = f"clamd at {host}:{port}"
    with _connect(host, port, timeout) as conn:
        try:
            conn.sendall(b"zINSTREAM\0")
            while chunk := fileobj.read(chunk_bytes):
                conn.sendall(_CHUNK_LENGTH.pack(len(chunk)))
                conn.sendall(chunk)
            conn.sendall(_END_OF_STREAM)
        except TimeoutError as exc:
            raise ScanError(f"{where} did not take the file within {timeout:g} s") from exc
        except OSError as exc:
            # clamd answers a stream over StreamMaxLength and then closes the connection while we are still
            # sending: its reply may be waiting in our receive buffer, and it says more than the broken pipe.
            reply = _read_reply_after_error(conn)
            if reply:
                return _parse_scan_reply(reply, where)
            raise ScanError(f"{where} closed the connection while the file was being sent ({exc})") from exc
        try:
            reply = _read_reply(conn)
        except TimeoutError as exc:
            raise ScanError(f"{where} gave no verdict within {timeout:g} s") from exc
        except OSError as exc:
            raise ScanError(f"{where} failed while scanning: {exc}") from exc
    return _parse_scan_reply(reply, where)


def ping(host: str, port: int, timeout: float = PING_TIMEOUT_SECONDS) -> bool:
    """True when clamd at host:port answers PING with PONG within `timeout` seconds."""
    try:
        with _connect(host, port, timeout) as conn:
            conn.sendall(b"zPING\0")
            return _read_reply(conn) == "PONG"
    except (ScanError, OSError):
        return False


@dataclass(frozen=True)
class ClamdScanner:
    """Scans files with one clamd; call it with a binary file object to get a ScanResult."""

    host: str
    port: int = DEFAULT_CLAMD_PORT
    timeout: float = SCAN_TIMEOUT_SECONDS

    def __call__(self, fileobj: IO[bytes]) -> ScanResult:
        return scan_stream(fileobj, self.host, self.port, timeout=self.timeout)


def scanner_from_config(config: Mapping[str, Any]) -> ClamdScanner | None:
    """The scanner the config describes (CLAMD_HOST, CLAMD_PORT defaulting to 3310).

    None when CLAMD_HOST is unset or empty: there is no scanner, and uploads are marked as not scanned.
    """
    host = str(config.get("CLAMD_HOST") or "").strip()
    if not host:
        return None
    raw_port = config.get("CLAMD_PORT") or DEFAULT_CLAMD_PORT
    try:
        port = int(raw_port)
    except (TypeError, ValueError):
        raise ConfigError(f"CLAMD_PORT must be a port number, not {raw_port!r}.") from None
    if not 0 < port < 65536:
        raise ConfigError(f"CLAMD_PORT must be between 1 and 65535, not {port}.")
    return ClamdScanner(host=host, port=port)


def _connect(host: str, port: int, timeout: float) -> socket.socket:
    try:
        return socket.create_connection((host, port), timeout=timeout)
    except TimeoutError as exc:
        raise ScanError(f"cannot connect to clamd at {host}:{port}: no answer within {timeout:g} s") from exc
    except ConnectionRefusedError as exc:
        raise ScanError(
            f"cannot connect to clamd at {host}:{port}: connection refused (is clamd running and listening "
            "on TCP there?)"
        ) from exc
    except OSError as exc:
        raise ScanError(f"cannot connect to clamd at {host}:{port}: {exc}") from exc


def _read_reply(conn: socket.socket) -> str:
    """clamd's reply up to its terminating NUL (or the end of the connection), without the NUL."""
    reply = bytearray()
    while b"\0" not in reply and len(reply) <= MAX_REPLY_BYTES:
        data = conn.recv(MAX_REPLY_BYTES)
        if not data:
            break
        reply += data
    return reply.split(b"\0", 1)[0].decode("utf-8", errors="replace").strip()


def _read_reply_after_error(conn: socket.socket) -> str:
    try:
        return _read_reply(conn)
    except OSError:
        return ""


def _parse_scan_reply(reply: str, where: str) -> ScanResult:
    if reply == f"{_STREAM_PREFIX}OK":
        return ScanResult(clean=True, signature=None)
    if found := _FOUND_REPLY.fullmatch(reply):
        return ScanResult(clean=False, signature=found["signature"])
    if reply.startswith(_SIZE_LIMIT_REPLY):
        raise ScanError(
            f"{where} refused the file: {_SIZE_LIMIT_REPLY} (the file is larger than its StreamMaxLength)"
        )
    if reply.endswith(" ERROR"):
        reason = reply.removesuffix(" ERROR").removeprefix(_STREAM_PREFIX).strip()
        raise ScanError(f"{where} could not scan the file: {reason}")
    if not reply:
        raise ScanError(f"{where} closed the connection without a verdict")
    raise ScanError(f"unexpected reply from {where}: {reply[:200]!r}")
