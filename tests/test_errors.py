"""One error model: every area's errors share one shape, there is one NotAllowed, and one app-wide handler
answers what a view did not catch with the right status and page (never a 500)."""

from __future__ import annotations

from pathlib import Path

import pytest
from flask import abort

from healthcrm import errors
from healthcrm.accounts.services import AccountError
from healthcrm.audit.services import Actor
from healthcrm.errors import Conflict, DomainError, NotAllowed, NotFound
from healthcrm.files.services import FileActionError
from healthcrm.patients.services import PatientError
from healthcrm.records import labs, record_templates
from healthcrm.records import services as records
from healthcrm.sharing import services as sharing
from healthcrm.sharing.overview import sharing_overview
from tests.factories import make_patient, make_tenant, make_user

AREA_ERRORS = [
    records.RecordError,
    PatientError,
    labs.LabError,
    AccountError,
    sharing.ShareError,
    FileActionError,
]


@pytest.mark.parametrize("area_error", AREA_ERRORS)
def test_every_area_error_is_a_domain_error_with_a_message_and_a_field(area_error):
    assert issubclass(area_error, DomainError)
    error = area_error("Enter the date.")
    assert error.message == "Enter the date." and str(error) == "Enter the date."
    assert error.field is None and error.status == 422
    if area_error not in (labs.LabError, FileActionError):
        assert area_error("Enter the date.", "until").field == "until"


def test_lab_errors_keep_their_rows_and_a_too_large_file_is_413():
    error = labs.LabError("Fix the rows.", [labs.RowError(2, "no value")])
    assert isinstance(error, DomainError) and [str(e) for e in error.row_errors] == ["row 2: no value"]
    assert labs.LabFileTooLarge("Too big.").status == 413


def test_there_is_one_not_allowed():
    assert records.NotAllowed is NotAllowed
    assert issubclass(NotAllowed, PermissionError)  # what callers caught before
    assert issubclass(NotFound, LookupError)  # what views catch to answer 404
    assert issubclass(Conflict, DomainError) and Conflict("x").status == 409


def test_every_service_refusal_is_the_one_not_allowed(app):
    tenant = make_tenant()
    patient = make_patient(tenant)
    desk = make_user(tenant, "front_desk")
    coach = make_user(tenant, "coach")
    desk_actor = Actor(tenant_id=tenant.id, user_id=desk.id, role=desk.role)
    coach_actor = Actor(tenant_id=tenant.id, user_id=coach.id, role=coach.role)
    refusals = [
        lambda: records.search_records(desk_actor, records.RecordFilters()),
        lambda: labs.add_lab_results(coach_actor, patient.id, []),
        lambda: record_templates.set_template_active(coach_actor, 1, False),
        lambda: sharing.list_shares(desk_actor, patient.id),
        lambda: sharing_overview(coach_actor),
    ]
    for refusal in refusals:
        with pytest.raises(NotAllowed):
            refusal()


def _answer(app, error: Exception):
    """What the app answers when a view raises `error` and does not catch it (Flask's own dispatch path)."""
    with app.test_request_context("/patients"):
        try:
            raise error
        except Exception as raised:  # handed to Flask as a view's uncaught error is
            return app.make_response(app.handle_user_exception(raised))


@pytest.mark.parametrize(
    ("error", "status", "text"),
    [
        (records.RecordError("This record is finalized and can no longer change."), 422, "is finalized"),
        (sharing.ShareError("Choose a date within a year.", "until"), 422, "within a year"),
        (PatientError("Enter a date of birth in the past.", "date_of_birth"), 422, "in the past"),
        (labs.LabFileTooLarge("The file is over 2 MB."), 413, "over 2 MB"),
        (Conflict("Someone finalized this draft meanwhile."), 409, "finalized this draft meanwhile"),
        (NotAllowed("record.finalize", "nurse"), 403, "Your account cannot open this page."),
        (NotFound(12345), 404, "not yours to see"),
    ],
)
def test_an_uncaught_domain_error_is_its_status_and_the_error_page(app, error, status, text):
    response = _answer(app, error)
    assert response.status_code == status
    page = response.get_data(as_text=True)
    assert text in page and f"Error {status}" in page
    # The permission and role of a refusal are for the logs, not the page.
    assert "record.finalize" not in page


def test_anything_else_is_still_a_500(app):
    response = _answer(app, KeyError("a bug"))
    assert response.status_code == 500
    assert "a bug" not in response.get_data(as_text=True)


def test_http_errors_keep_their_pages(app):
    with app.test_request_context("/patients"):
        try:
            abort(413)
        except Exception as raised:
            response = app.make_response(app.handle_user_exception(raised))
    assert response.status_code == 413 and "Too large" in response.get_data(as_text=True)


def test_errors_module_needs_no_flask():
    # Services, jobs and CLI commands raise these without a request or an app.
    source = Path(errors.__file__).read_text(encoding="utf-8")
    assert "import flask" not in source and "from flask" not in source
