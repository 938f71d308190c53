"""Benchmark of a 1 GB upload through the local storage backend against a bare streaming upload sink.

    .venv/bin/python bench/upload_local.py [--size-mb 1024] [--rounds 1] [--part-mb N] [--keep]
    .venv/bin/python bench/upload_local.py --size-mb 64 --rounds 3      # a quick run

Writes a DICOM file of the given size: a JPEG-baseline file meta and a multi-frame image header, then
encapsulated pixel data, one fragment per frame: a real 512 × 512 JPEG, then 256 KiB frames of random bytes.
That is an allowed type the app keeps as it is (compressed DICOM is not gzipped, and random bytes would not
shrink). Seeds a throw-away SQLite database (the migrations, one clinic, a doctor, a patient, a draft
record) and serves the app as production does, `gunicorn -w 1 --threads 4 wsgi:app`, on a free local port
with the embedded defaults (local storage, inline jobs, no Redis). The client signs the doctor in through
/login and uploads as the browser does: POST /records/<id>/uploads for the plan, POST /uploads/<id>/parts
for the part URLs, one PUT per part to the local backend's signed route, then POST /uploads/<id>/complete,
which joins the parts, sniffs, hashes and stores the version; with inline jobs the preview is made in that
same request, so it is timed too. Every stored version's SHA-256 is checked against the file's.

The baseline is a bare WSGI app in this file (`bare_sink`) served by the same gunicorn command line: it
streams each PUT's body to a file in 1 MiB reads and answers 200 with the MD5 as ETag. It receives the same
file as the same number of PUTs of the same size (the app's PART_BYTES unless --part-mb says otherwise),
one after the other, as the app run sends them. It never fsyncs, where the local backend fsyncs every part
and the joined file; that durability is part of what the ratio measures. Each round uploads to the sink,
then to the app, with the page cache synced before each upload; with --rounds N the medians are printed.

Both use the same client: stdlib http.client, a fresh connection per request, each part streamed from the
file in 1 MiB writes (the client never holds a whole part). Prints seconds and MiB/s for both, the app's
time split into parts and complete, the throughput ratio app / sink, and each gunicorn worker's resident
memory from /proc: idle (VmRSS before the uploads) and peak (VmHWM, reset after boot and sign-in, read
after the uploads), also as multiples of the part size.
"""

from __future__ import annotations

import argparse
import hashlib
import http.client
import io
import json
import os
import re
import shutil
import signal
import socket
import statistics
import struct
import subprocess
import sys
import tempfile
import time
from http.cookies import SimpleCookie
from pathlib import Path
from urllib.parse import urlencode, urlsplit

CHUNK_BYTES = 1024 * 1024
MIB = 1024 * 1024
FRAME_BYTES = 256 * 1024  # one JPEG frame of the test file's pixel data
PASSWORD = "bench-password-1"  # noqa: S105 - the throw-away bench doctor
EMAIL = "doctor@upload-bench.example"
FILENAME = "bench-upload.dcm"
REQUEST_TIMEOUT_SECONDS = 1800
BOOT_TIMEOUT_SECONDS = 60
PART_URLS_PER_CALL = 100  # what POST /uploads/<id>/parts answers at most
ROOT = Path(__file__).resolve().parent.parent
CSRF_META = re.compile(r'<meta name="csrf-token" content="([^"]+)"')
SINK_DIR_ENV = "UPLOAD_BENCH_SINK_DIR"
# (7FE0,0010) Pixel Data, OB, undefined length; items and the sequence delimiter of encapsulated frames.
PIXEL_DATA_TAG = b"\xe0\x7f\x10\x00OB\x00\x00\xff\xff\xff\xff"
ITEM_TAG = b"\xfe\xff\x00\xe0"
SEQUENCE_DELIMITER = b"\xfe\xff\xdd\xe0\x00\x00\x00\x00"


def bare_sink(environ, start_response):
    """The baseline: stream a PUT's body to <sink dir>/<last path segment> and answer with its MD5."""
    if environ["REQUEST_METHOD"] != "PUT":
        start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", "2")])
        return [b"ok"]
    name = re.sub(r"[^0-9A-Za-z_-]", "", environ.get("PATH_INFO", "").rsplit("/", 1)[-1]) or "body"
    remaining = int(environ.get("CONTENT_LENGTH") or 0)
    digest = hashlib.md5(usedforsecurity=False)
    stream = environ["wsgi.input"]
    with open(Path(os.environ[SINK_DIR_ENV]) / name, "wb") as target:
        while remaining > 0:
            chunk = stream.read(min(CHUNK_BYTES, remaining))
            if not chunk:
                break
            digest.update(chunk)
            target.write(chunk)
            remaining -= len(chunk)
    start_response("200 OK", [("ETag", f'"{digest.hexdigest()}"'), ("Content-Length", "0")])
    return [b""]


def _dicom_header(frames: int) -> bytes:
    """Preamble, DICM, file meta (JPEG baseline) and a multi-frame image dataset, up to the pixel data."""
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.uid import JPEGBaseline8Bit, SecondaryCaptureImageStorage, generate_uid

    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = SecondaryCaptureImageStorage
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = JPEGBaseline8Bit
    dataset = Dataset()
    dataset.file_meta = meta
    dataset.SOPClassUID = SecondaryCaptureImageStorage
    dataset.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
    dataset.PatientName = "Bench^Upload"
    dataset.PatientID = "BENCH-1"
    dataset.StudyDate = "20261101"
    dataset.Modality = "OT"
    dataset.Rows = 512
    dataset.Columns = 512
    dataset.SamplesPerPixel = 1
    dataset.PhotometricInterpretation = "MONOCHROME2"
    dataset.BitsAllocated = 8
    dataset.BitsStored = 8
    dataset.HighBit = 7
    dataset.PixelRepresentation = 0
    dataset.NumberOfFrames = frames
    buffer = io.BytesIO()
    dataset.save_as(buffer, enforce_file_format=True)
    return buffer.getvalue()


def _frame_sizes(body: int) -> list[int]:
    """Fragment lengths (even, FRAME_BYTES but the last) filling `body` bytes of items (8-byte headers)."""
    count = max(1, -(-body // (FRAME_BYTES + 8)))
    last = body - (count - 1) * (FRAME_BYTES + 8) - 8
    if last <= 0 and count > 1:
        count, last = count - 1, last + FRAME_BYTES + 8
    return [FRAME_BYTES] * (count - 1) + [last]


def _first_frame() -> bytes:
    """A real 512 × 512 grayscale JPEG, so the app's DICOM preview has a frame to decode."""
    from PIL import Image

    buffer = io.BytesIO()
    Image.effect_noise((512, 512), 48).save(buffer, format="JPEG", quality=90)
    data = buffer.getvalue()
    return data + b"\x00" * (len(data) % 2)  # DICOM values have even lengths


def _write_test_file(path: Path, size: int) -> str:
    """A DICOM file of exactly `size` bytes, written a frame at a time; returns its SHA-256.

    The pixel data is encapsulated, one fragment per frame as a multi-frame study is stored (a single 1 GB
    fragment would be one 1 GB frame, which a viewer must read whole): a real JPEG first, random bytes after.
    """
    first = _first_frame()
    frames = 1
    while True:  # NumberOfFrames is in the header, so the header's length depends on the frame count
        header = _dicom_header(frames)
        body = size - len(header) - len(PIXEL_DATA_TAG) - 8 - len(SEQUENCE_DELIMITER)
        sizes = [len(first), *_frame_sizes(body - 8 - len(first))]
        if len(sizes) == frames:
            break
        frames = len(sizes)
    if sizes[-1] <= 0 or sizes[-1] % 2:
        raise SystemExit(f"Cannot make a DICOM file of {size} bytes.")
    digest = hashlib.sha256()
    with open(path, "wb") as target:

        def write(data: bytes) -> None:
            digest.update(data)
            target.write(data)

        write(header + PIXEL_DATA_TAG + ITEM_TAG + struct.pack("<I", 0))  # an empty basic offset table
        write(ITEM_TAG + struct.pack("<I", len(first)) + first)
        for length in sizes[1:]:
            write(ITEM_TAG + struct.pack("<I", length) + os.urandom(length))
        write(SEQUENCE_DELIMITER)
    if path.stat().st_size != size:
        raise SystemExit(f"The test file has {path.stat().st_size} bytes, not {size}.")
    return digest.hexdigest()


class FilePart:
    """A read-only window on [offset, offset + length) of a file, for http.client to stream from."""

    def __init__(self, file, offset: int, length: int):
        self._file = file
        self._file.seek(offset)
        self._remaining = length

    def read(self, size: int = -1) -> bytes:
        if self._remaining <= 0:
            return b""
        size = self._remaining if size < 0 else min(size, self._remaining)
        data = self._file.read(size)
        self._remaining -= len(data)
        return data


class Client:
    """A browser stand-in: cookies, the CSRF token from the page, one fresh connection per request."""

    def __init__(self, port: int):
        self.port = port
        self.cookies: dict[str, str] = {}
        self.csrf_token = ""

    def request(self, method: str, url: str, body=None, headers: dict | None = None):
        """Send one request; returns (status, headers, body). `url` may be absolute (a signed URL)."""
        parts = urlsplit(url)
        path = parts.path + (f"?{parts.query}" if parts.query else "")
        headers = dict(headers or {})
        if self.cookies:
            headers["Cookie"] = "; ".join(f"{name}={value}" for name, value in self.cookies.items())
        connection = http.client.HTTPConnection(
            "127.0.0.1", self.port, timeout=REQUEST_TIMEOUT_SECONDS, blocksize=CHUNK_BYTES
        )
        try:
            connection.request(method, path, body=body, headers=headers)
            response = connection.getresponse()
            data = response.read()
        finally:
            connection.close()
        for header in response.headers.get_all("Set-Cookie") or []:
            for name, morsel in SimpleCookie(header).items():
                if morsel.value and morsel["max-age"] != "0":
                    self.cookies[name] = morsel.value
                else:
                    self.cookies.pop(name, None)
        return response.status, response.headers, data

    def put_part(self, url: str, file, offset: int, length: int) -> str:
        """PUT one part streamed from the file; returns the ETag the server answered with."""
        status, headers, data = self.request(
            "PUT",
            url,
            body=FilePart(file, offset, length),
            headers={"Content-Length": str(length), "Content-Type": "application/octet-stream"},
        )
        if status not in (200, 201, 204) or not headers.get("ETag"):
            raise SystemExit(f"PUT {urlsplit(url).path} answered {status}: {data[:300]!r}")
        return headers["ETag"]

    def fetch_csrf_token(self, path: str) -> None:
        status, _, data = self.request("GET", path)
        found = CSRF_META.search(data.decode("utf-8", "replace"))
        if status != 200 or not found:
            raise SystemExit(f"GET {path} answered {status} without a CSRF token")
        self.csrf_token = found.group(1)

    def sign_in(self, email: str, password: str) -> None:
        self.fetch_csrf_token("/login")
        form = urlencode({"email": email, "password": password, "csrf_token": self.csrf_token})
        status, headers, _ = self.request(
            "POST", "/login", body=form, headers={"Content-Type": "application/x-www-form-urlencoded"}
        )
        if status not in (302, 303):
            raise SystemExit(f"Sign-in failed with {status}")
        # The session gets a fresh CSRF token at sign-in; the API calls need that one.
        self.fetch_csrf_token(urlsplit(headers.get("Location", "/")).path or "/")

    def post_json(self, path: str, payload: dict) -> dict:
        status, _, data = self.request(
            "POST",
            path,
            body=json.dumps(payload),
            headers={"Content-Type": "application/json", "X-CSRFToken": self.csrf_token},
        )
        if status not in (200, 201):
            raise SystemExit(f"POST {path} answered {status}: {data[:500]!r}")
        return json.loads(data)


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _children(pid: int) -> list[int]:
    """Process ids whose parent is `pid` (read from /proc, no psutil)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        # The command name in parentheses may hold spaces; the parent id is the 2nd field after it.
        if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
            found.append(int(entry.name))
    return found


def _memory(pid: int) -> dict[str, int]:
    """VmRSS and VmHWM (peak resident set) of a process, in bytes."""
    values = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        name, _, value = line.partition(":")
        if name in ("VmRSS", "VmHWM"):
            values[name] = int(value.split()[0]) * 1024
    return values


def _reset_peak(pid: int) -> int:
    """Reset the process's VmHWM to its current RSS (Linux 4.0+); returns the peak it had until now.

    The web worker's peak before the upload is its boot and the sign-in, whose argon2id hash alone takes
    64 MiB; the upload's peak is measured from here.
    """
    before = _memory(pid)["VmHWM"]
    Path(f"/proc/{pid}/clear_refs").write_text("5")
    return before


class Server:
    """`gunicorn -w 1 --threads 4` serving `app_spec` on a free port; `worker` is its one worker's pid."""

    def __init__(self, app_spec: str, pythonpath: Path, cwd: Path, env: dict[str, str], log: Path):
        self.port = _free_port()
        self.log = log
        command = [sys.executable, "-m", "gunicorn", "-w", "1", "--threads", "4"]
        command += ["-b", f"127.0.0.1:{self.port}", "--pythonpath", str(pythonpath), app_spec]
        with open(log, "wb") as output:
            self.process = subprocess.Popen(  # noqa: S603 - our own gunicorn, no shell
                command, cwd=cwd, env=env, stdout=output, stderr=subprocess.STDOUT
            )
        try:
            self.worker = self._wait_for_worker()
        except BaseException:
            self.stop()
            raise

    def _wait_for_worker(self) -> int:
        """The worker's pid, once it has loaded the app and answered a request."""
        deadline = time.monotonic() + BOOT_TIMEOUT_SECONDS
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise SystemExit(f"gunicorn exited with {self.process.returncode}:\n{self.log_tail()}")
            connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=BOOT_TIMEOUT_SECONDS)
            try:
                connection.request("GET", "/")
                connection.getresponse().read()
            except OSError:
                time.sleep(0.1)
                continue
            finally:
                connection.close()
            workers = _children(self.process.pid)
            if len(workers) == 1:
                return workers[0]
            time.sleep(0.1)
        raise SystemExit(f"gunicorn did not start a worker in {BOOT_TIMEOUT_SECONDS} s:\n{self.log_tail()}")

    def log_tail(self, lines: int = 30) -> str:
        return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])

    def check_worker(self) -> None:
        """The worker that served the run is still the one measured (not killed and replaced)."""
        if _children(self.process.pid) != [self.worker]:
            raise SystemExit(f"The gunicorn worker {self.worker} was replaced:\n{self.log_tail()}")

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def _server_env(workdir: Path, database_url: str) -> dict[str, str]:
    env = {
        name: value
        for name, value in os.environ.items()
        if not name.startswith(("REDIS_", "S3_", "AWS_", "CLAMD_", "SMTP_"))
    }
    env.update(
        {
            "APP_ENV": "development",
            "SECRET_KEY": "upload-bench",
            "DATABASE_URL": database_url,
            "STORAGE_BACKEND": "local",
            "STORAGE_LOCAL_ROOT": str(workdir / "storage"),
            "MAIL_BACKEND": "outbox",
            "MAIL_OUTBOX_DIR": str(workdir / "outbox"),
            SINK_DIR_ENV: str(workdir / "sink"),
        }
    )
    return env


def _bench_app(workdir: Path, database_url: str):
    """The app in this process, on the bench database, to seed it and read it back."""
    from healthcrm import create_app

    return create_app(
        {
            "APP_ENV": "development",
            "INSTANCE_PATH": str(workdir / "instance"),
            "SECRET_KEY": "upload-bench",
            "SQLALCHEMY_DATABASE_URI": database_url,
        }
    )


def _seed(workdir: Path, database_url: str) -> int:
    """The schema from the migrations, one clinic, a doctor, a patient and a draft record; the record id."""
    from datetime import date, datetime

    from flask_migrate import upgrade

    from healthcrm.accounts.models import DOCTOR, Tenant, User
    from healthcrm.accounts.secrets import hash_password
    from healthcrm.extensions import db
    from healthcrm.patients.models import Patient
    from healthcrm.records.models import DRAFT, MedicalRecord

    app = _bench_app(workdir, database_url)
    with app.app_context():
        upgrade()
        tenant = Tenant(name="Upload Bench Clinic", slug="upload-bench")
        db.session.add(tenant)
        db.session.flush()
        doctor = User(
            tenant_id=tenant.id,
            email=EMAIL,
            full_name="Dr. Upload Bench",
            role=DOCTOR,
            password_hash=hash_password(PASSWORD),
        )
        patient = Patient(
            tenant_id=tenant.id,
            mrn="UB-0001",
            first_name="Ada",
            last_name="Bench",
            date_of_birth=date(1960, 5, 1),
        )
        db.session.add_all([doctor, patient])
        db.session.flush()
        record = MedicalRecord(
            tenant_id=tenant.id,
            patient_id=patient.id,
            doctor_id=doctor.id,
            author_id=doctor.id,
            visit_at=datetime(2026, 11, 1, 9, 0),
            chief_complaint="Imaging follow-up",
            status=DRAFT,
        )
        db.session.add(record)
        db.session.commit()
        record_id = record.id
        db.session.remove()
        db.engine.dispose()
    return record_id


def _stored_sha256(workdir: Path, database_url: str, attachment_id: int, number: int) -> str | None:
    """The SHA-256 the app recorded for that version of the attachment."""
    from sqlalchemy import select

    from healthcrm.extensions import db
    from healthcrm.files.models import AttachmentVersion

    app = _bench_app(workdir, database_url)
    with app.app_context():
        sha256 = db.session.scalar(
            select(AttachmentVersion.sha256).where(
                AttachmentVersion.attachment_id == attachment_id, AttachmentVersion.number == number
            )
        )
        db.session.remove()
        db.engine.dispose()
    return sha256


def _upload_to_sink(client: Client, path: Path, size: int, part_size: int) -> float:
    """Seconds to PUT the file as consecutive parts of `part_size` bytes."""
    started = time.perf_counter()
    with open(path, "rb") as file:
        for number, offset in enumerate(range(0, size, part_size), start=1):
            client.put_part(f"/parts/{number}", file, offset, min(part_size, size - offset))
    return time.perf_counter() - started


def _upload_to_app(client: Client, record_id: int, path: Path, size: int, worker: int) -> dict:
    """Upload as the browser does; returns the plan, the complete answer, the seconds of each step and the
    worker's memory once the parts are in (before complete)."""
    started = time.perf_counter()
    plan = client.post_json(
        f"/records/{record_id}/uploads",
        {
            "name": FILENAME,
            "size": size,
            "type": "application/dicom",
            "fingerprint": f"{FILENAME}|{size}|{started}",
        },
    )
    if not plan.get("multipart"):
        raise SystemExit(f"Expected a multipart plan for {size} bytes, got {plan}")
    part_size, part_count = int(plan["part_size"]), int(plan["part_count"])
    etags: list[list] = []
    with open(path, "rb") as file:
        for first in range(1, part_count + 1, PART_URLS_PER_CALL):
            numbers = list(range(first, min(first + PART_URLS_PER_CALL, part_count + 1)))
            answer = client.post_json(f"/uploads/{plan['id']}/parts", {"part_numbers": numbers})
            urls = {int(number): url for number, url in answer["urls"].items()}
            for number in numbers:
                offset = (number - 1) * part_size
                etag = client.put_part(urls[number], file, offset, min(part_size, size - offset))
                etags.append([number, etag])
    parts_done = time.perf_counter()
    memory_after_parts = _memory(worker)
    complete_started = time.perf_counter()
    completed = client.post_json(f"/uploads/{plan['id']}/complete", {"parts": etags})
    finished = time.perf_counter()
    if completed.get("status") != "ok":
        raise SystemExit(f"complete answered {completed}")
    return {
        "plan": plan,
        "completed": completed,
        "parts_seconds": parts_done - started,
        "complete_seconds": finished - complete_started,
        "seconds": (parts_done - started) + (finished - complete_started),
        "memory_after_parts": memory_after_parts,
    }


def _mib(size: int) -> str:
    return f"{size / MIB:,.1f}"


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--size-mb", type=int, default=1024, help="file size in MiB (default 1024)")
    parser.add_argument(
        "--part-mb",
        type=int,
        default=None,
        help="the sink's part size in MiB (default: the app's PART_BYTES)",
    )
    parser.add_argument(
        "--rounds", type=int, default=1, help="sink and app uploads, alternating; medians are printed"
    )
    parser.add_argument("--keep", action="store_true", help="keep the temporary directory")
    args = parser.parse_args()
    if args.size_mb < 6:
        parser.error("--size-mb must be at least 6: smaller files are one POST, not a multipart upload")
    size = args.size_mb * MIB

    workdir = Path(tempfile.mkdtemp(prefix="healthcrm-upload-bench-"))
    database_url = f"sqlite:///{workdir / 'bench.db'}"
    (workdir / "sink").mkdir()
    env = _server_env(workdir, database_url)
    servers: list[Server] = []
    sink_seconds: list[float] = []
    runs: list[dict] = []
    try:
        from healthcrm.files.uploads import PART_BYTES

        part_size = args.part_mb * MIB if args.part_mb else PART_BYTES
        test_file = workdir / FILENAME
        started = time.perf_counter()
        sha256 = _write_test_file(test_file, size)
        record_id = _seed(workdir, database_url)
        print(f"wrote {_mib(size)} MiB DICOM and seeded in {time.perf_counter() - started:.1f} s", flush=True)

        # Baseline: the bare sink behind the same gunicorn command line.
        sink = Server(
            "upload_local:bare_sink", Path(__file__).resolve().parent, workdir, env, workdir / "sink.log"
        )
        servers.append(sink)
        app = Server("wsgi:app", ROOT, workdir, env, workdir / "app.log")
        servers.append(app)
        client = Client(app.port)
        client.sign_in(EMAIL, PASSWORD)
        sink_boot_peak, app_boot_peak = _reset_peak(sink.worker), _reset_peak(app.worker)
        sink_idle, app_idle = _memory(sink.worker), _memory(app.worker)
        for _ in range(args.rounds):
            # Each upload starts with no dirty pages left by the one before (the sink never fsyncs).
            os.sync()
            sink_seconds.append(_upload_to_sink(Client(sink.port), test_file, size, part_size))
            os.sync()
            runs.append(_upload_to_app(client, record_id, test_file, size, app.worker))
        sink.check_worker()
        app.check_worker()
        sink_memory, app_memory = _memory(sink.worker), _memory(app.worker)
    except BaseException:
        for server in servers:
            print(f"--- the end of {server.log}\n{server.log_tail()}", file=sys.stderr)
        print(f"kept {workdir} (logs, database, storage)", file=sys.stderr)
        raise
    finally:
        for server in servers:
            server.stop()

    plan = runs[0]["plan"]
    app_part = int(plan["part_size"])
    for run in runs:
        completed = run["completed"]
        stored = _stored_sha256(workdir, database_url, completed["attachment_id"], completed["version"])
        if stored != sha256:
            raise SystemExit(f"The stored version's SHA-256 {stored} is not the file's {sha256}")
    if args.keep:
        print(f"kept {workdir}")
    else:
        shutil.rmtree(workdir, ignore_errors=True)

    sink_parts = -(-size // part_size)
    print(
        f"{_mib(size)} MiB in {plan['part_count']} parts of {_mib(app_part)} MiB"
        f" (the sink: {sink_parts} PUTs of {_mib(part_size)} MiB); gunicorn -w 1 --threads 4, SQLite,"
        f" local storage, inline jobs"
    )
    print(
        "the stored version has the file's SHA-256"
        if len(runs) == 1
        else f"each of the {len(runs)} stored versions has the file's SHA-256"
    )
    print()
    sink_median = statistics.median(sink_seconds)
    app_median = statistics.median(run["seconds"] for run in runs)
    sink_rate, app_rate = size / MIB / sink_median, size / MIB / app_median
    title = f"upload, median of {args.rounds} rounds" if args.rounds > 1 else "upload"
    print(f"{title:<48} {'seconds':>14} {'MiB/s':>8}")
    print(f"{'bare sink (PUTs streamed to disk)':<48} {sink_median:>14.2f} {sink_rate:>8.1f}")
    print(f"{'app: start, part URLs, PUTs, complete':<48} {app_median:>14.2f} {app_rate:>8.1f}")
    for step, key in (
        ("start, part URLs and PUTs", "parts_seconds"),
        ("complete (join, check, hash, preview)", "complete_seconds"),
    ):
        print(f"{'  of which ' + step:<48} {statistics.median(run[key] for run in runs):>14.2f}")
    print(f"throughput ratio app / sink: {app_rate / sink_rate:.2f}")
    print()
    print(
        f"{'gunicorn worker memory (MiB)':<48} {'idle':>8} {'peak':>8} {'growth':>8} {'peak/part':>9}"
        f" {'growth/part':>11}"
    )
    for label, idle, memory, part in (
        ("bare sink", sink_idle, sink_memory, part_size),
        ("app, once the parts are in (first round)", app_idle, runs[0]["memory_after_parts"], app_part),
        ("app, after complete", app_idle, app_memory, app_part),
    ):
        rss, peak = idle["VmRSS"], memory["VmHWM"]
        print(
            f"{label:<48} {_mib(rss):>8} {_mib(peak):>8} {_mib(peak - rss):>8} {peak / part:>8.1f}×"
            f" {(peak - rss) / part:>10.1f}×"
        )
    print(
        f"(idle: VmRSS before the uploads; peak: VmHWM, reset before them. Peak until then, at boot and"
        f" sign-in: sink {_mib(sink_boot_peak)}, app {_mib(app_boot_peak)} MiB.)"
    )


if __name__ == "__main__":
    main()
