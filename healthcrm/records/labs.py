"""Structured lab results: entered in rows, imported from CSV, and read back per test as a trend.

Rows arrive as text (a form, a CSV file) and are checked here into `LabInput`s with row-by-row messages a
person can act on; the abnormal flag is always computed from the reference range, never typed. Times are
entered in the clinic's time zone and stored in UTC. Every read and change writes an audit event in the
same transaction, naming fields, never values.
"""

from __future__ import annotations

import csv
import io
import math
import re
import secrets
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from itsdangerous import BadSignature, URLSafeTimedSerializer
from sqlalchemy import select

from ..audit.models import AuditEvent
from ..audit.services import Actor, record_event
from ..clock import utcnow, zone_info
from ..counters import insert_unless_exists
from ..errors import DomainError, NotFound
from ..extensions import db
from ..patients.models import Patient
from ..permissions import require
from ..portal import events
from ..tenancy import get_scoped, scoped
from .models import LabImport, LabResult, MedicalRecord

CSV_COLUMNS = ("code", "name", "value", "unit", "ref_low", "ref_high", "observed_at")
CSV_MAX_BYTES = 2 * 1024 * 1024
CSV_MAX_ROWS = 5_000
# The preview sends the CSV back in a form field; browsers turn every line end into CRLF, so the field can
# be up to twice the file. The import view raises its form field limit to this.
CSV_FORM_FIELD_BYTES = 2 * CSV_MAX_BYTES + 64 * 1024
IMPORT_SIGNING_SALT = "lab-import"
# Lab analysers and people's clocks disagree by a little; more than this ahead of now is a typo.
FUTURE_TOLERANCE = timedelta(minutes=10)
EARLIEST_YEAR = 1900
MAX_CODE = 20
MAX_NAME = 200
MAX_UNIT = 30
MAX_TEXT_VALUE = 200

RESULT_RELEASED = "result.released"  # the portal event of results the patient can now see
HIGH = "H"
LOW = "L"
NORMAL = "N"
FLAG_LABELS = {HIGH: "High", LOW: "Low", NORMAL: "Normal"}

# Plain decimals only: no exponents, no "nan"/"inf", no thousands separators, no Python-style underscores.
NUMBER = re.compile(r"[+-]?(?:\d+(?:\.\d*)?|\.\d+)")
# A LOINC code: up to 7 digits, a dash, a check digit. Other codes are kept as the clinic's own codes.
LOINC_SHAPE = re.compile(r"\d{1,7}-\d")
TIME_FORMATS = ("%Y-%m-%d %H:%M", "%Y-%m-%dT%H:%M", "%Y-%m-%d %H:%M:%S", "%Y-%m-%dT%H:%M:%S", "%Y-%m-%d")
TIME_EXAMPLE = "a date like 2025-03-14 or 2025-03-14 09:30"


@dataclass(frozen=True)
class KnownTest:
    name: str
    unit: str


# Common tests by LOINC code: fills the name and unit when only the code is given, and feeds the forms'
# suggestions. Reference ranges are not here on purpose: they belong to the lab that measured the value.
KNOWN_TESTS: dict[str, KnownTest] = {
    "1975-2": KnownTest("Bilirubin, total", "mg/dL"),
    "6301-6": KnownTest("INR", "INR"),
    "2160-0": KnownTest("Creatinine", "mg/dL"),
    "2951-2": KnownTest("Sodium", "mmol/L"),
    "2823-3": KnownTest("Potassium", "mmol/L"),
    "3094-0": KnownTest("Urea nitrogen (BUN)", "mg/dL"),
    "1751-7": KnownTest("Albumin", "g/dL"),
    "1742-6": KnownTest("ALT", "U/L"),
    "1920-8": KnownTest("AST", "U/L"),
    "777-3": KnownTest("Platelets", "10*3/uL"),
    "6690-2": KnownTest("White blood cells", "10*3/uL"),
    "718-7": KnownTest("Hemoglobin", "g/dL"),
    "4548-4": KnownTest("HbA1c", "%"),
    "2345-7": KnownTest("Glucose", "mg/dL"),
    "2093-3": KnownTest("Cholesterol, total", "mg/dL"),
    "2085-9": KnownTest("HDL cholesterol", "mg/dL"),
    "13457-7": KnownTest("LDL cholesterol (calculated)", "mg/dL"),
    "2571-8": KnownTest("Triglycerides", "mg/dL"),
    "3016-3": KnownTest("TSH", "mIU/L"),
}


# UCUM units as people write them. Only what the exact table lacks goes through the general rules below.
UCUM_DISPLAY: dict[str, str] = {
    "{INR}": "",
    "{ratio}": "",
    "mm[Hg]": "mmHg",
    "Cel": "°C",
    "[degF]": "°F",
    "[IU]/L": "IU/L",
    "m[IU]/L": "mIU/L",
    "u[IU]/mL": "µIU/mL",
    "mL/min/{1.73_m2}": "mL/min/1.73 m²",
    "kg/m2": "kg/m²",
}
_SUPERSCRIPTS = str.maketrans("0123456789", "⁰¹²³⁴⁵⁶⁷⁸⁹")
_POWER_OF_TEN = re.compile(r"10\*(\d+)")
# A "u" starting a unit (or after "/") is micro: uL, ug/dL, umol/L, uU/mL.
_MICRO = re.compile(r"(?:^|(?<=/))u(?=L|g|mol|U|IU|\[IU\])")


def display_unit(unit: str | None) -> str:
    """A unit as people write it: `10*3/uL` → `10³/µL`, `umol/L` → `µmol/L`, `{INR}` → nothing."""
    if not unit:
        return ""
    if unit in UCUM_DISPLAY:
        return UCUM_DISPLAY[unit]
    shown = _POWER_OF_TEN.sub(lambda m: "10" + m.group(1).translate(_SUPERSCRIPTS), unit)
    shown = _MICRO.sub("µ", shown)
    return shown.replace("[IU]", "IU")


class LabError(DomainError):
    """Input the user can fix: a message, and the rows that need fixing."""

    def __init__(self, message: str, row_errors: list[RowError] | None = None):
        super().__init__(message)
        self.row_errors = row_errors or []


class LabFileTooLarge(LabError):
    """The uploaded file is over `CSV_MAX_BYTES` (the view answers 413)."""

    status = 413


class LabAlreadyImported(LabError):
    """The previewed file was imported already (a confirm sent twice): nothing was saved again."""

    def __init__(self):
        super().__init__("This file was already imported; nothing was saved again.")


@dataclass(frozen=True)
class RowError:
    """A problem with one row (`line` is the form row or the CSV file line; 0 for the whole file)."""

    line: int
    message: str

    def __str__(self) -> str:
        return f"row {self.line}: {self.message}" if self.line else self.message


@dataclass(frozen=True)
class LabInput:
    """One checked lab row. `observed_at` is naive UTC; `value` is as entered (a number or text)."""

    code: str
    name: str
    value: str
    unit: str | None
    ref_low: float | None
    ref_high: float | None
    observed_at: datetime

    @property
    def value_numeric(self) -> float | None:
        return _number(self.value)

    @property
    def flag(self) -> str | None:
        return compute_flag(self.value_numeric, self.ref_low, self.ref_high)

    @property
    def reference_range(self) -> str:
        return _range_text(self.ref_low, self.ref_high)


@dataclass(frozen=True)
class LabImportPreview:
    """A parsed CSV file: the rows that read well, with their file lines, and every problem found."""

    rows: list[LabInput]
    errors: list[RowError]
    lines: list[int] = field(default_factory=list)

    @property
    def can_import(self) -> bool:
        return bool(self.rows) and not self.errors


@dataclass(frozen=True)
class LabTest:
    """One test of a patient (one code, or one name when there is no code), its results oldest first."""

    code: str
    name: str
    results: list[LabResult]

    @property
    def latest(self) -> LabResult:
        return self.results[-1]

    @property
    def unit(self) -> str | None:
        return self.latest.unit

    @property
    def charted(self) -> list[LabResult]:
        """The numeric results in the latest unit: a line across units would mislead."""
        return [r for r in self.results if r.value_numeric is not None and r.unit == self.latest.unit]

    @property
    def not_charted(self) -> int:
        return sum(1 for r in self.results if r.value_numeric is not None) - len(self.charted)


def group_by_test(results: Iterable[LabResult]) -> list[LabTest]:
    """Lab results grouped by test (by code; by name when a result has no code), tests by name. Each
    test's results keep the order given, so pass them oldest first."""
    groups: dict[str, list[LabResult]] = {}
    for result in results:
        groups.setdefault(result.code or f"name:{result.name.casefold()}", []).append(result)
    tests = [LabTest(code=rows[-1].code, name=rows[-1].name, results=rows) for rows in groups.values()]
    return sorted(tests, key=lambda test: (test.name.casefold(), test.code or ""))


@dataclass(frozen=True)
class LabOverview:
    patient: Patient
    tests: list[LabTest]

    def chart_series(self) -> list[dict]:
        """The trend of each test with at least two numeric results, as plain data for the chart script.

        `canvas` is the index of the test in `tests` (the page names its canvas after it); times are
        milliseconds since the epoch (UTC).
        """
        series = []
        for index, test in enumerate(self.tests):
            points = test.charted
            if len(points) < 2:
                continue
            series.append(
                {
                    "canvas": index,
                    "code": test.code,
                    "name": test.name,
                    "unit": display_unit(test.unit),
                    "points": [
                        {
                            "t": int(r.observed_at.replace(tzinfo=UTC).timestamp() * 1000),
                            "y": r.value_numeric,
                            "low": r.ref_low,
                            "high": r.ref_high,
                            "flag": r.flag,
                        }
                        for r in points
                    ],
                }
            )
        return series


# --- checking rows -------------------------------------------------------------------------------------


def compute_flag(value_numeric: float | None, ref_low: float | None, ref_high: float | None) -> str | None:
    """H above the range, L below it, N inside it (both ends included); None without a number or a range."""
    if value_numeric is None or (ref_low is None and ref_high is None):
        return None
    if ref_low is not None and value_numeric < ref_low:
        return LOW
    if ref_high is not None and value_numeric > ref_high:
        return HIGH
    return NORMAL


def is_loinc_check_digit_valid(code: str) -> bool:
    """LOINC's check digit is the mod-10 (Luhn) digit of the number before the dash."""
    number, check = code.split("-")
    total = 0
    for position, char in enumerate(reversed(number)):
        digit = int(char)
        if position % 2 == 0:
            digit *= 2
            if digit > 9:
                digit -= 9
        total += digit
    return (10 - total % 10) % 10 == int(check)


def _number(text: str | None) -> float | None:
    text = (text or "").strip()
    if not NUMBER.fullmatch(text):
        return None
    number = float(text)
    # A few hundred digits read as infinity, which is no lab value (and no JSON).
    return number if math.isfinite(number) else None


def _range_text(low: float | None, high: float | None) -> str:
    if low is not None and high is not None:
        return f"{low:g}–{high:g}"
    if low is not None:
        return f"≥ {low:g}"
    if high is not None:
        return f"≤ {high:g}"
    return ""


def _parse_time(text: str, zone: ZoneInfo) -> datetime | None:
    """A local date or date-and-time as naive UTC (a date alone means its midnight)."""
    for fmt in TIME_FORMATS:
        try:
            local = datetime.strptime(text, fmt)  # noqa: DTZ007 - naive: the clinic zone is attached next
        except ValueError:
            continue
        try:
            return local.replace(tzinfo=zone).astimezone(UTC).replace(tzinfo=None)
        except OverflowError:  # year 1 or 9999 moved across midnight by the offset
            return None
    return None


def _check(lab: LabInput, observed_text: str) -> list[str]:
    """The rules a row must meet once its parts are read; shared by form, CSV and direct callers."""
    errors = []
    if not lab.name:
        errors.append("name or a known LOINC code is required")
    elif len(lab.name) > MAX_NAME:
        errors.append(f"name is longer than {MAX_NAME} characters")
    if len(lab.code) > MAX_CODE:
        errors.append(f"code is longer than {MAX_CODE} characters")
    elif LOINC_SHAPE.fullmatch(lab.code) and not is_loinc_check_digit_valid(lab.code):
        errors.append(f"code '{lab.code}' is not a LOINC code (its check digit is wrong)")
    if lab.unit and len(lab.unit) > MAX_UNIT:
        errors.append(f"unit is longer than {MAX_UNIT} characters")
    if not lab.value:
        errors.append("value is required")
    elif lab.value_numeric is None:
        if lab.ref_low is not None or lab.ref_high is not None:
            errors.append(
                f"value '{lab.value}' is not a number and the test has a numeric reference range"
                + (" (use a dot for decimals)" if re.fullmatch(r"[+-]?\d+,\d+", lab.value) else "")
            )
        elif len(lab.value) > MAX_TEXT_VALUE:
            errors.append(f"value is longer than {MAX_TEXT_VALUE} characters")
    if lab.ref_low is not None and lab.ref_high is not None and lab.ref_low > lab.ref_high:
        errors.append(f"reference low {lab.ref_low:g} is above reference high {lab.ref_high:g}")
    if lab.observed_at > utcnow() + FUTURE_TOLERANCE:
        errors.append(f"observed time '{observed_text}' is in the future")
    elif lab.observed_at.year < EARLIEST_YEAR:
        errors.append(f"observed time '{observed_text}' is before {EARLIEST_YEAR}")
    return errors


def is_blank_row(raw: Mapping[str, str | None]) -> bool:
    return not any((raw.get(name) or "").strip() for name in CSV_COLUMNS)


def validate_lab_row(
    raw: Mapping[str, str | None], *, zone: str = "UTC"
) -> tuple[LabInput | None, list[str]]:
    """Read one row of text fields (the CSV columns) into a `LabInput`, or say everything wrong with it.

    A known LOINC code fills an empty name and unit. `observed_at` is in the clinic's time zone `zone`.
    Messages have no row number; `RowError` adds it.
    """

    def text(name: str) -> str:
        return (raw.get(name) or "").strip()

    errors: list[str] = []
    code = text("code")
    known = KNOWN_TESTS.get(code)
    name = text("name") or (known.name if known else "")
    unit = text("unit") or (known.unit if known else "") or None
    refs: dict[str, float | None] = {}
    for part, label in (("ref_low", "reference low"), ("ref_high", "reference high")):
        refs[part] = _number(text(part))
        if text(part) and refs[part] is None:
            errors.append(f"{label} '{text(part)}' is not a number")
    observed_text = text("observed_at")
    observed_at = _parse_time(observed_text, zone_info(zone)) if observed_text else None
    if not observed_text:
        errors.append("observed time is required")
    elif observed_at is None:
        errors.append(f"observed time '{observed_text}' is not {TIME_EXAMPLE}")
    lab = LabInput(
        code=code,
        name=name,
        value=text("value"),
        unit=unit,
        ref_low=refs["ref_low"],
        ref_high=refs["ref_high"],
        observed_at=observed_at or utcnow(),
    )
    errors.extend(_check(lab, observed_text) if observed_at else _check_without_time(lab))
    return (None, errors) if errors else (lab, [])


def _check_without_time(lab: LabInput) -> list[str]:
    # The time was already reported as missing or unreadable; check the rest against a harmless time.
    return [message for message in _check(lab, "") if not message.startswith("observed time")]


def read_lab_rows(
    raw_rows: Iterable[Mapping[str, str | None]], *, zone: str = "UTC"
) -> tuple[list[LabInput], list[RowError]]:
    """The filled rows of a form (blank rows skipped), numbered from 1 as the form shows them."""
    rows: list[LabInput] = []
    errors: list[RowError] = []
    for number, raw in enumerate(raw_rows, start=1):
        if is_blank_row(raw):
            continue
        lab, messages = validate_lab_row(raw, zone=zone)
        if lab is not None:
            rows.append(lab)
        errors.extend(RowError(number, message) for message in messages)
    return rows, errors


# --- CSV files -----------------------------------------------------------------------------------------


def decode_lab_csv(data: bytes) -> str:
    """The uploaded file as text: UTF-8, with or without a byte-order mark, at most `CSV_MAX_BYTES`."""
    if len(data) > CSV_MAX_BYTES:
        raise LabFileTooLarge(
            f"The file is larger than {CSV_MAX_BYTES // (1024 * 1024)} MB. Split it into smaller files."
        )
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise LabError(
            "The file is not UTF-8 text. Save it as “CSV UTF-8 (comma delimited)” and upload it again."
        ) from None


def _file_error(message: str, line: int = 0) -> LabImportPreview:
    return LabImportPreview(rows=[], errors=[RowError(line, message)])


def parse_lab_csv(text: str, *, zone: str = "UTC") -> LabImportPreview:
    """Read a CSV file with the header `code,name,value,unit,ref_low,ref_high,observed_at` (any case, any
    order; `,` or `;` between values) into rows and row-by-row errors. Nothing is saved.

    `value`, `observed_at` and one of `code` or `name` must be columns; unknown columns are errors so that
    no data is silently dropped. Line numbers are the file's (the header is row 1), as a spreadsheet shows.
    """
    text = text.removeprefix("\ufeff")
    if len(text.replace("\r\n", "\n").encode()) > CSV_MAX_BYTES:
        return _file_error(f"the file is larger than {CSV_MAX_BYTES // (1024 * 1024)} MB")
    if "\x00" in text:
        return _file_error("the file is not a CSV text file")
    if not text.strip():
        return _file_error("the file is empty")
    first_line = next(line for line in text.splitlines() if line.strip())
    delimiter = ";" if first_line.count(";") > first_line.count(",") else ","
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter)
    try:
        header = next(cells for cells in reader if any(cell.strip() for cell in cells))
        header_line = reader.line_num
        names = [cell.strip().lower() for cell in header]
        problems = _header_problems(names)
        if problems:
            return LabImportPreview(rows=[], errors=[RowError(header_line, p) for p in problems])
        rows: list[LabInput] = []
        lines: list[int] = []
        errors: list[RowError] = []
        count = 0
        for cells in reader:
            if not any(cell.strip() for cell in cells):
                continue
            count += 1
            if count > CSV_MAX_ROWS:
                return _file_error(
                    f"the file has more than {CSV_MAX_ROWS:,} rows; split it into smaller files"
                )
            line = reader.line_num
            extra = [cell for cell in cells[len(names) :] if cell.strip()]
            if extra:
                errors.append(
                    RowError(line, f"{len(cells)} values but the header names {len(names)} columns")
                )
                continue
            raw = {name: (cells[i] if i < len(cells) else "") for i, name in enumerate(names) if name}
            unnamed = [
                cells[i] for i, name in enumerate(names) if not name and i < len(cells) and cells[i].strip()
            ]
            if unnamed:
                errors.append(RowError(line, "a value is in a column without a name in the header"))
                continue
            lab, messages = validate_lab_row(raw, zone=zone)
            if lab is not None:
                rows.append(lab)
                lines.append(line)
            errors.extend(RowError(line, message) for message in messages)
    except csv.Error as error:
        return _file_error(f"the file cannot be read as CSV ({error})", reader.line_num)
    except StopIteration:
        return _file_error("the file is empty")
    if count == 0:
        return _file_error("the file has a header but no lab rows under it", header_line)
    return LabImportPreview(rows=rows, errors=errors, lines=lines)


def _header_problems(names: list[str]) -> list[str]:
    expected = ",".join(CSV_COLUMNS)
    problems = [
        f"unknown column '{name}'; the columns are {expected}"
        for name in names
        if name and name not in CSV_COLUMNS
    ]
    problems += [
        f"the column '{name}' appears twice"
        for name in sorted({n for n in names if n and names.count(n) > 1})
    ]
    missing = [name for name in ("value", "observed_at") if name not in names]
    if "code" not in names and "name" not in names:
        missing.insert(0, "code or name")
    if missing:
        problems.append(
            f"the header has no column {', '.join(repr(m) for m in missing)}; the first line must name the "
            f"columns {expected}"
        )
    return problems


# --- saving --------------------------------------------------------------------------------------------


def _patient_and_record(
    actor: Actor, patient_id: int, record_id: int | None
) -> tuple[Patient, MedicalRecord | None]:
    patient = get_scoped(Patient, patient_id, actor.tenant_id)
    if patient is None:
        raise NotFound(patient_id)
    if record_id is None:
        return patient, None
    record = get_scoped(MedicalRecord, record_id, actor.tenant_id)
    if record is None:
        raise NotFound(record_id)
    if record.patient_id != patient.id:
        raise LabError("That record belongs to another patient.")
    if not record.is_draft:
        raise LabError("That record is finalized and can no longer change. Add the labs without a record.")
    return patient, record


def _stage(
    actor: Actor, patient: Patient, record: MedicalRecord | None, rows: list[LabInput]
) -> list[LabResult]:
    problems = [
        RowError(n, m)
        for n, lab in enumerate(rows, start=1)
        for m in _check(lab, f"{lab.observed_at:%Y-%m-%d %H:%M} UTC")
    ]
    if problems:
        raise LabError("Nothing was saved: fix the rows below.", problems)
    if not rows:
        raise LabError("Enter at least one lab result.")
    results = []
    for lab in rows:
        numeric = lab.value_numeric
        result = LabResult(
            tenant_id=patient.tenant_id,
            patient_id=patient.id,
            record_id=record.id if record else None,
            code=lab.code,
            name=lab.name,
            value_numeric=numeric,
            value_text=None if numeric is not None else lab.value,
            unit=lab.unit,
            ref_low=lab.ref_low,
            ref_high=lab.ref_high,
            flag=lab.flag,
            observed_at=lab.observed_at,
            entered_by_id=actor.user_id,
        )
        db.session.add(result)
        results.append(result)
    db.session.flush()
    # Released to the patient at once (records/result_holds.py): one event for the rows saved together.
    events.raise_event(
        actor,
        RESULT_RELEASED,
        patient_id=patient.id,
        tenant_id=patient.tenant_id,
        subject=("lab_result", results[0].id),
        count=len(results),
    )
    return results


def _filled_fields(result: LabResult) -> list[str]:
    names = (
        "code",
        "name",
        "value_numeric",
        "value_text",
        "unit",
        "ref_low",
        "ref_high",
        "flag",
        "observed_at",
        "record_id",
    )
    return [name for name in names if getattr(result, name) not in (None, "")]


def stage_lab_results(
    actor: Actor, patient_id: int, rows: list[LabInput], record_id: int | None = None
) -> list[LabResult]:
    """`add_lab_results` without the commit, for a caller that saves labs with its own change (the record
    form): the labs and their `lab.create` events are committed or rolled back with it."""
    require(actor, "lab.write")
    patient, record = _patient_and_record(actor, patient_id, record_id)
    results = _stage(actor, patient, record, rows)
    for result in results:
        record_event(
            actor,
            "lab.create",
            resource_type="lab_result",
            resource_id=result.id,
            patient_id=patient.id,
            changed_fields=_filled_fields(result),
        )
    return results


def add_lab_results(
    actor: Actor, patient_id: int, rows: list[LabInput], record_id: int | None = None
) -> list[LabResult]:
    """Save several lab results of the clinic's patient, optionally on one of the patient's draft records.

    Raises LookupError for a patient or record of another clinic, LabError for rows that break the rules
    (nothing is saved), NotAllowed for a role that may not add labs.
    """
    results = stage_lab_results(actor, patient_id, rows, record_id)
    events.commit()
    return results


def issue_import_token(secret_key: str, patient_id: int, user_id: int | None) -> str:
    """A signed one-time token for confirming one previewed file: it names a fresh random import id, the
    patient and the person who previewed it. `read_import_token` gives the id back; the import records it."""
    payload = {"import": secrets.token_hex(8), "patient": patient_id, "user": user_id}
    return URLSafeTimedSerializer(secret_key, salt=IMPORT_SIGNING_SALT).dumps(payload)


def read_import_token(secret_key: str, token: str, patient_id: int, user_id: int | None) -> str:
    """The import id of a token from `issue_import_token`, if it is intact and was issued for this patient and
    person; otherwise LabError (the person uploads the file again).

    Tokens do not expire: one is no permission (the confirm still needs a signed-in writer), only the name of
    one import, so an old page sent again must still be recognised as already imported.
    """
    try:
        payload = URLSafeTimedSerializer(secret_key, salt=IMPORT_SIGNING_SALT).loads(token)
    except BadSignature:
        payload = None
    if not (
        isinstance(payload, dict)
        and payload.get("patient") == patient_id
        and payload.get("user") == user_id
        and re.fullmatch(r"[0-9a-f]{16}", str(payload.get("import")))
    ):
        raise LabError("This preview could not be checked. Upload the file again to import it.")
    return payload["import"]


def _already_imported(tenant_id: int, patient_id: int, import_id: str) -> bool:
    """Whether a `lab.import` event names this import id: imports confirmed before `LabImport` rows
    existed are known only by their audit event."""
    query = select(AuditEvent.id).where(
        AuditEvent.tenant_id == tenant_id,
        AuditEvent.patient_id == patient_id,
        AuditEvent.action == "lab.import",
        AuditEvent.resource_id.startswith(f"{import_id}:", autoescape=True),
    )
    return db.session.scalar(query.limit(1)) is not None


def _claim_import(actor: Actor, patient_id: int, import_id: str) -> bool:
    """Take the import id for this transaction; False when another confirm took it (now, or before)."""
    row = {
        "tenant_id": actor.tenant_id,
        "import_id": import_id,
        "patient_id": patient_id,
        "imported_by_id": actor.user_id,
        "created_at": utcnow(),
    }
    return insert_unless_exists(LabImport, row, ["tenant_id", "import_id"])


def import_lab_csv(
    actor: Actor, patient_id: int, text: str, *, zone: str = "UTC", import_id: str | None = None
) -> list[LabResult]:
    """Save every row of a CSV file, or none: the file is parsed again and must have no errors.

    One `lab.import` event records the import; its resource id says how many rows it saved, after the
    `import_id` of the preview's token when there is one. An import id is used once: a second import with it
    (the confirm sent twice) raises LabAlreadyImported and saves nothing.
    """
    require(actor, "lab.write")
    patient, _ = _patient_and_record(actor, patient_id, None)
    preview = parse_lab_csv(text, zone=zone)
    if preview.errors:
        raise LabError("Nothing was imported: fix the rows below and upload the file again.", preview.errors)
    if import_id and (
        _already_imported(patient.tenant_id, patient.id, import_id)
        or not _claim_import(actor, patient.id, import_id)
    ):
        raise LabAlreadyImported()
    results = _stage(actor, patient, None, preview.rows)
    record_event(
        actor,
        "lab.import",
        resource_type="lab_import",
        resource_id=f"{import_id}: {len(results)} rows" if import_id else f"{len(results)} rows",
        patient_id=patient.id,
        changed_fields=sorted({name for result in results for name in _filled_fields(result)}),
    )
    events.commit()
    return results


# --- reading -------------------------------------------------------------------------------------------


def lab_overview(actor: Actor, patient_id: int) -> LabOverview:
    """The patient's labs grouped by test, each oldest first, tests by name; one query, audited as a read.

    Raises LookupError for another clinic's patient.
    """
    require(actor, "lab.read")
    patient = get_scoped(Patient, patient_id, actor.tenant_id)
    if patient is None:
        raise NotFound(patient_id)
    results = db.session.scalars(
        scoped(LabResult, actor.tenant_id)
        .where(LabResult.patient_id == patient.id)
        .order_by(LabResult.code, LabResult.observed_at, LabResult.id)
    )
    tests = group_by_test(results)
    record_event(actor, "lab.view", resource_type="lab_result", patient_id=patient.id)
    db.session.commit()
    return LabOverview(patient=patient, tests=tests)
