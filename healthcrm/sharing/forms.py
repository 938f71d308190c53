"""Forms of the pages where patients (and staff for them) share records and manage their links."""

from __future__ import annotations

from email.utils import parseaddr

from flask_wtf import FlaskForm
from wtforms import (
    BooleanField,
    DateField,
    FieldList,
    Form,
    FormField,
    IntegerField,
    PasswordField,
    RadioField,
    SelectMultipleField,
    StringField,
    TextAreaField,
)
from wtforms.validators import InputRequired, Length, NumberRange, Optional
from wtforms.widgets import CheckboxInput, ListWidget

from ..clock import utc_to_local
from .models import RECORD_TYPES, SCOPE_ALL, SCOPE_RECORDS, SCOPE_TYPES
from .services import (
    DURATION_PRESETS,
    MAX_MESSAGE_CHARS,
    MAX_RECIPIENTS,
    PASSCODE_MAX_CHARS,
    ShareRequest,
)

UNTIL_DATE = "date"
SCOPES = {
    SCOPE_ALL: "My complete health record",
    SCOPE_TYPES: "Chosen kinds of records",
    SCOPE_RECORDS: "Chosen visits",
}
DURATIONS = {str(days): f"{days} days" for days in DURATION_PRESETS} | {UNTIL_DATE: "Until a date"}
LIMIT = [Optional(), NumberRange(1, 1000, message="A limit is between 1 and 1,000.")]


class MultiCheckboxField(SelectMultipleField):
    widget = ListWidget(prefix_label=False)
    option_widget = CheckboxInput()


class RecipientRow(Form):
    name = StringField("Name", validators=[Optional(), Length(max=200)])
    email = StringField("Email", validators=[Optional(), Length(max=254)])


class ShareForm(FlaskForm):
    recipients = FieldList(FormField(RecipientRow), min_entries=1, max_entries=MAX_RECIPIENTS)
    recipients_text = TextAreaField(
        "Or paste several, one per line", validators=[Optional(), Length(max=5000)]
    )
    message = TextAreaField("Message (optional)", validators=[Optional(), Length(max=MAX_MESSAGE_CHARS)])
    scope = RadioField("What to share", choices=SCOPES, default=SCOPE_ALL)
    scope_types = MultiCheckboxField("Kinds of records", choices=RECORD_TYPES)
    # Any id may be posted: the service accepts only the patient's own finalized records, and says so.
    scope_record_ids = MultiCheckboxField("Visits", coerce=int, choices=[], validate_choice=False)
    days = RadioField("How long the link works", choices=DURATIONS, default="30")
    until = DateField("Until", validators=[Optional()])
    allow_download = BooleanField("Allow downloads (PDF, files)", default=False)
    passcode = PasswordField("Passcode (optional)", validators=[Optional(), Length(max=PASSCODE_MAX_CHARS)])
    verify_email = BooleanField("Verify the recipient by email", default=False)
    max_opens = IntegerField("Most opens", validators=LIMIT)
    max_downloads = IntegerField("Most downloads", validators=LIMIT)

    # Errors about the recipients as a whole (no single box is wrong), shown at the top of their fieldset.
    recipient_errors: list[str]

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.recipient_errors = []

    def set_records(self, records, zone: str) -> None:
        self.scope_record_ids.choices = [(record.id, record_label(record, zone)) for record in records]

    def add_row(self):
        """One more empty recipient row (the "Add another" button without JavaScript), or None when full."""
        if len(self.recipients) >= self.recipients.max_entries:
            return None
        return self.recipients.append_entry()

    def empty_row(self, index: int):
        if not 0 <= index < self.recipients.max_entries:
            return None
        while len(self.recipients) <= index:
            self.recipients.append_entry()
        return self.recipients[index]

    def parsed_recipients(self) -> list[tuple[str, str]]:
        """(name, email) from the rows and the pasted lines; a pasted line that is not "Name <email>" is
        left out, its reason kept in `recipient_errors`."""
        found = []
        for row in self.recipients:
            name, email = (row.form.name.data or "").strip(), (row.form.email.data or "").strip()
            if name or email:
                found.append((name, email))
        for line in (self.recipients_text.data or "").splitlines():
            line = line.strip()
            if not line:
                continue
            name, email = parseaddr(line)
            if not email or "@" not in email or not name:
                self.recipient_errors.append(f"Write “{line[:80]}” as Name <email>.")
                continue
            found.append((name.strip(), email.strip()))
        return found

    def to_request(self, recipients: list[tuple[str, str]]) -> ShareRequest:
        """What the form asks for, also when some of it is invalid (an unknown choice becomes None), so the
        service can check the rest at the same time."""
        until = self.until.data if self.days.data == UNTIL_DATE else None
        days = self.days.data or ""
        return ShareRequest(
            recipients=recipients,
            scope=self.scope.data,
            scope_types=list(self.scope_types.data or []),
            scope_record_ids=list(self.scope_record_ids.data or []),
            days=int(days) if days.isdigit() else None,
            until=until,
            allow_download=self.allow_download.data,
            passcode=self.passcode.data or "",
            verify_email=self.verify_email.data,
            max_opens=self.max_opens.data,
            max_downloads=self.max_downloads.data,
            message=self.message.data or "",
        )

    def is_clean(self) -> bool:
        """No error anywhere: the form's, the recipients' and those the service added after `validate`."""
        return not (self.errors or self.recipient_errors or self.form_errors)

    def error_summary(self) -> list[tuple[str | None, str]]:
        """Every error, in the page's order, as (the id of the control to go to, the message); None for an
        error of the whole form."""
        items: list[tuple[str | None, str]] = []
        first_name = self.recipients[0].form.name.id
        items += [(first_name, message) for message in self.recipient_errors]
        for row in self.recipients:
            for box in (row.form.name, row.form.email):
                items += [(box.id, message) for message in box.errors]
        for field in (
            self.recipients_text, self.message, self.scope, self.scope_types, self.scope_record_ids,
            self.days, self.until, self.passcode, self.verify_email, self.allow_download, self.max_opens,
            self.max_downloads,
        ):  # fmt: skip
            items += [(_target(field), message) for message in field.errors]
        items += [(None, message) for message in self.form_errors]
        return items

    def validate(self, extra_validators=None) -> bool:
        valid = super().validate(extra_validators)
        if self.days.data == UNTIL_DATE and self.until.data is None and not self.until.errors:
            self.until.errors.append("Choose the date the link stops working.")
            valid = False
        return valid


def _target(field) -> str:
    """Where an error link takes the person: the field, or a choice group's first option (a group with no
    options, its fieldset)."""
    if isinstance(field, RadioField | SelectMultipleField):
        return f"{field.id}-0" if field.choices else f"{field.id}-group"
    return field.id


def record_label(record, zone: str) -> str:
    """A finalized record as the patient knows it: the visit's date (clinic time), complaint and primary
    diagnosis."""
    parts = [utc_to_local(record.visit_at, zone).strftime("%d %b %Y"), record.chief_complaint]
    primary = record.primary_diagnosis
    if primary is not None:
        parts.append(f"{primary.code} {primary.name}")
    return " · ".join(parts)


class ExtendForm(FlaskForm):
    until = DateField("New end date", validators=[InputRequired(message="Choose a date.")])


class PasscodeForm(FlaskForm):
    passcode = PasswordField("New passcode", validators=[Optional(), Length(max=PASSCODE_MAX_CHARS)])
    remove = BooleanField("Remove the passcode")

    def validate(self, extra_validators=None) -> bool:
        valid = super().validate(extra_validators)
        if not self.passcode.data and not self.remove.data:
            self.passcode.errors.append("Type the new passcode, or remove it.")
            valid = False
        return valid
