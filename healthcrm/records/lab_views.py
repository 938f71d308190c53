"""Staff pages for a patient's lab results: the trend page, adding several rows at once, and the CSV
import (upload → preview → confirm; a confirm sent twice imports once)."""

from __future__ import annotations

from flask import Blueprint, abort, current_app, flash, redirect, request, url_for
from flask_htmx.responses import HTMXResponseClientRedirect
from flask_login import current_user

from ..access import current_actor, requires
from ..extensions import htmx
from ..patients import services as patients
from ..web import render_page
from . import labs
from .flowsheet import build_flowsheet, flowsheet_args

bp = Blueprint("labs", __name__, url_prefix="/patients/<int:patient_id>/labs")

INVALID = 422
TOO_LARGE = 413
ADD_ROWS = 5
can_read = requires("lab.read")
can_write = requires("lab.write")


@bp.url_value_preprocessor
def _room_for_the_previewed_csv(endpoint: str | None, _values: dict | None) -> None:
    # The confirm step posts the previewed file back as a text field, larger than Flask's default field
    # limit. URL preprocessors run before every before_request hook, so the CSRF check (which reads the
    # form first) already parses with this limit; other endpoints keep the default.
    if endpoint == "labs.import_labs":
        request.max_form_memory_size = labs.CSV_FORM_FIELD_BYTES


@bp.app_template_filter("lab_unit")
def _lab_unit(unit: str | None) -> str:
    return labs.display_unit(unit)


def _zone() -> str:
    return current_user.tenant.timezone


def _patient_or_404(patient_id: int):
    patient = patients.get_patient(current_actor(), patient_id)
    if patient is None:
        abort(404)
    return patient


def _empty_rows() -> list[dict[str, str]]:
    return [dict.fromkeys(labs.CSV_COLUMNS, "") for _ in range(ADD_ROWS)]


def _posted_rows() -> tuple[list[dict[str, str]], str]:
    """The add form's rows as typed, and the sample time shared by rows that leave theirs empty."""
    shared_time = request.form.get("observed_at", "").strip()
    rows = [
        {name: request.form.get(f"rows-{n}-{name}", "") for name in labs.CSV_COLUMNS} for n in range(ADD_ROWS)
    ]
    return rows, shared_time


def _with_shared_time(rows: list[dict[str, str]], shared_time: str) -> list[dict[str, str]]:
    return [
        row if labs.is_blank_row(row) or row["observed_at"].strip() else {**row, "observed_at": shared_time}
        for row in rows
    ]


def _lab_page(patient_id: int, *, rows=None, shared_time="", errors=None, message="", status=200):
    try:
        overview = labs.lab_overview(current_actor(), patient_id)
    except LookupError:
        abort(404)
    sheet = build_flowsheet(overview.tests, _zone(), **flowsheet_args(request.args))
    series = [s for s in overview.chart_series() if sheet.chart and s["canvas"] == sheet.chart.index]
    return render_page(
        "records/labs.html",
        block="flowsheet" if status == 200 else None,
        fragment=bool(htmx and not htmx.boosted),
        overview=overview,
        sheet=sheet,
        patient=overview.patient,
        series=series,
        timezone=_zone(),
        can_write=current_user.can("lab.write"),
        known_tests=labs.KNOWN_TESTS,
        flag_labels=labs.FLAG_LABELS,
        rows=rows or _empty_rows(),
        shared_time=shared_time,
        errors=errors or [],
        message=message,
        status=status,
    )


@bp.get("")
@can_read
def index(patient_id: int):
    return _lab_page(patient_id)


@bp.post("/add")
@can_write
def add(patient_id: int):
    patient = _patient_or_404(patient_id)
    typed, shared_time = _posted_rows()
    rows, errors = labs.read_lab_rows(_with_shared_time(typed, shared_time), zone=_zone())
    message = "Nothing was saved: fix the rows below."
    if not errors:
        try:
            saved = labs.add_lab_results(current_actor(), patient.id, rows)
        except LookupError:
            abort(404)
        except labs.LabError as error:
            errors, message = error.row_errors, error.message
        else:
            flash(f"{len(saved)} lab result{'s' if len(saved) != 1 else ''} saved.", "success")
            target = url_for("labs.index", patient_id=patient.id)
            if htmx and not htmx.boosted:
                return HTMXResponseClientRedirect(target)
            return redirect(target, code=303)
    if htmx and not htmx.boosted:
        return render_page(
            "records/labs.html",
            block="add_form",
            patient=patient,
            known_tests=labs.KNOWN_TESTS,
            rows=typed,
            shared_time=shared_time,
            errors=errors,
            message=message,
            status=INVALID,
        )
    return _lab_page(
        patient.id, rows=typed, shared_time=shared_time, errors=errors, message=message, status=INVALID
    )


def _import_page(patient, *, preview=None, csv_text="", message="", status=200):
    # A preview that can be imported carries a fresh one-time token for its confirm button.
    token = ""
    if preview is not None and preview.can_import:
        token = labs.issue_import_token(current_app.secret_key, patient.id, current_user.id)
    return render_page(
        "records/lab_import.html",
        block="import_area",
        patient=patient,
        preview=preview,
        csv_text=csv_text,
        import_token=token,
        message=message,
        flag_labels=labs.FLAG_LABELS,
        columns=labs.CSV_COLUMNS,
        max_rows=labs.CSV_MAX_ROWS,
        max_megabytes=labs.CSV_MAX_BYTES // (1024 * 1024),
        status=status,
    )


@bp.route("/import", methods=["GET", "POST"])
@can_write
def import_labs(patient_id: int):
    patient = _patient_or_404(patient_id)
    if request.method == "GET":
        return _import_page(patient)
    if request.form.get("step") == "confirm":
        text = request.form.get("csv_text", "")
        try:
            import_id = labs.read_import_token(
                current_app.secret_key, request.form.get("import_token", ""), patient.id, current_user.id
            )
            saved = labs.import_lab_csv(current_actor(), patient.id, text, zone=_zone(), import_id=import_id)
        except LookupError:
            abort(404)
        except labs.LabAlreadyImported as error:
            flash(error.message, "info")
            return redirect(url_for("labs.index", patient_id=patient.id), code=303)
        except labs.LabError as error:
            preview = labs.parse_lab_csv(text, zone=_zone())
            return _import_page(
                patient, preview=preview, csv_text=text, message=error.message, status=INVALID
            )
        flash(f"{len(saved)} lab result{'s' if len(saved) != 1 else ''} imported.", "success")
        return redirect(url_for("labs.index", patient_id=patient.id), code=303)
    upload = request.files.get("file")
    if upload is None or not upload.filename:
        return _import_page(patient, message="Choose a CSV file to upload.", status=INVALID)
    try:
        text = labs.decode_lab_csv(upload.stream.read(labs.CSV_MAX_BYTES + 1))
    except labs.LabFileTooLarge as error:
        return _import_page(patient, message=error.message, status=TOO_LARGE)
    except labs.LabError as error:
        return _import_page(patient, message=error.message, status=INVALID)
    preview = labs.parse_lab_csv(text, zone=_zone())
    return _import_page(patient, preview=preview, csv_text=text, status=INVALID if preview.errors else 200)
