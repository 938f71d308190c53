from datetime import timedelta

from flask_wtf import FlaskForm
from wtforms import (
    BooleanField,
    DateField,
    DateTimeLocalField,
    DecimalField,
    FieldList,
    Form,
    FormField,
    HiddenField,
    IntegerField,
    SelectField,
    SelectMultipleField,
    StringField,
    TextAreaField,
)
from wtforms.validators import DataRequired, InputRequired, Length, NumberRange, Optional
from wtforms.widgets import CheckboxInput, ListWidget

from ..clock import clinic_today, local_to_utc, utc_to_local, utcnow
from . import units
from .models import ALLERGY_SEVERITIES, ALLERGY_STATUSES, ASCITES, ENCEPHALOPATHY, ROUTES
from .record_templates import SECTIONS, TemplateInput
from .services import MAX_DIAGNOSES, MAX_PRESCRIPTIONS, DiagnosisInput, PrescriptionInput, RecordInput

# Empty rows a new record starts with; "Add …" buttons add one more at a time, up to the limits.
DIAGNOSIS_ROWS = 2
PRESCRIPTION_ROWS = 2
LAB_ROWS = 2
# New lab results saved with one record form (the lab page's CSV import takes more).
MAX_LABS = 20
UNSET = {"": "Not assessed"}


class DiagnosisRow(Form):
    # No Length here: it would render maxlength=10 and the browser would cut a word search typed in this box
    # ("alcoholic cirrhosis" → "alcoholic "). The service checks the code; the typeahead bounds its query.
    code = StringField("ICD-10-CM code", validators=[Optional()])
    name = StringField("Diagnosis", validators=[Optional(), Length(max=300)])
    primary = BooleanField("Primary")
    notes = StringField("Notes", validators=[Optional(), Length(max=1000)])
    # A row the template filled: it is saved as a diagnosis only once "Confirm" is ticked (unticked at first).
    suggested = HiddenField()
    confirmed = BooleanField("Confirm")

    @property
    def is_suggestion(self) -> bool:
        return self.suggested.data == "1"


class PrescriptionRow(Form):
    drug = StringField("Drug", validators=[Optional(), Length(max=200)])
    dose = StringField("Dose", validators=[Optional(), Length(max=100)])
    route = SelectField("Route", choices={"": "—"} | ROUTES, validate_choice=False)
    frequency = StringField("Frequency", validators=[Optional(), Length(max=100)])
    duration = StringField("Duration", validators=[Optional(), Length(max=100)])
    refills = IntegerField("Refills", validators=[Optional(), NumberRange(0, 12)], default=0)


class LabRow(Form):
    code = StringField("LOINC code", validators=[Optional(), Length(max=20)])
    name = StringField("Test", validators=[Optional(), Length(max=200)])
    value = StringField("Value", validators=[Optional(), Length(max=200)])
    unit = StringField("Unit", validators=[Optional(), Length(max=30)])
    ref_low = StringField("Range low", validators=[Optional(), Length(max=20)])
    ref_high = StringField("Range high", validators=[Optional(), Length(max=20)])
    observed_at = StringField("Observed", validators=[Optional(), Length(max=20)])


# The record form's sections of repeated rows (their field names); each field's max_entries is its limit.
ROW_SECTIONS = ("diagnoses", "prescriptions", "labs")


class RecordForm(FlaskForm):
    template_version_id = HiddenField()
    doctor_id = SelectField("Doctor", coerce=int, choices={})
    visit_at = DateTimeLocalField(
        "Visit date and time",
        format="%Y-%m-%dT%H:%M",
        validators=[InputRequired(message="Enter the visit date and time.")],
    )
    chief_complaint = StringField("Chief complaint", validators=[DataRequired(), Length(max=500)])
    bp_systolic = IntegerField("Systolic (mmHg)", validators=[Optional()])
    bp_diastolic = IntegerField("Diastolic (mmHg)", validators=[Optional()])
    pulse = IntegerField("Pulse (/min)", validators=[Optional()])
    # Typed in the clinic's units (set_units), stored in SI (units.py).
    temperature = DecimalField("Temperature (°C)", places=1, validators=[Optional()])
    respiratory_rate = IntegerField("Respiratory rate (/min)", validators=[Optional()])
    spo2 = IntegerField("SpO2 (%)", validators=[Optional()])
    weight = DecimalField("Weight (kg)", places=1, validators=[Optional()])
    height = DecimalField("Height (cm)", places=1, validators=[Optional()])
    # The service checks these; a template without the assessment section does not send them at all.
    ascites = SelectField("Ascites", choices=UNSET | ASCITES, validate_choice=False, default="")
    encephalopathy = SelectField(
        "Hepatic encephalopathy", choices=UNSET | ENCEPHALOPATHY, validate_choice=False, default=""
    )
    on_dialysis = BooleanField("Dialysis twice or more in the past week")
    diagnoses = FieldList(FormField(DiagnosisRow), min_entries=DIAGNOSIS_ROWS, max_entries=MAX_DIAGNOSES)
    prescriptions = FieldList(
        FormField(PrescriptionRow), min_entries=PRESCRIPTION_ROWS, max_entries=MAX_PRESCRIPTIONS
    )
    labs = FieldList(FormField(LabRow), min_entries=LAB_ROWS, max_entries=MAX_LABS)
    treatment_plan = TextAreaField("Treatment plan", validators=[Optional(), Length(max=10000)])
    notes = TextAreaField("Notes", validators=[Optional(), Length(max=20000)])
    patient_summary = TextAreaField("Summary for the patient", validators=[Optional(), Length(max=5000)])
    notes_visible_to_patient = BooleanField("Let the patient read the notes")
    follow_up_required = BooleanField("Follow-up required")
    follow_up_date = DateField("Follow-up date", validators=[Optional()])

    def set_doctors(self, doctors) -> None:
        self.doctor_id.choices = {doctor.id: doctor.full_name for doctor in doctors}

    def add_row(self, section: str):
        """One more empty row at the end of `section` ("diagnoses", "prescriptions" or "labs"), keeping what
        was typed in the others; None for an unknown section or one that is full."""
        if section not in ROW_SECTIONS:
            return None
        rows = self[section]
        return rows.append_entry() if len(rows) < rows.max_entries else None

    def empty_row(self, section: str, index: int):
        """The empty row at position `index` of `section` (the "Add …" buttons' fragment), or None when
        the section has no such position."""
        if section not in ROW_SECTIONS or not 0 <= index < self[section].max_entries:
            return None
        _room_for(self[section], index + 1, spare=False)
        return self[section][index]

    # The clinic's time zone: the visit time is typed and shown in it, and kept in UTC.
    zone = "UTC"

    def set_zone(self, zone: str) -> None:
        self.zone = zone

    # The clinic's unit system for weight, height and temperature (units.py).
    unit_system = units.METRIC

    def set_units(self, system: str) -> None:
        self.unit_system = system
        for kind in units.VITALS:
            self[kind].label.text = f"{units.VITALS[kind].label} ({units.unit(kind, system)})"

    def to_input(self) -> RecordInput:
        def number(field):
            return None if field.data is None else float(field.data)

        diagnoses = [
            DiagnosisInput(
                row.form.code.data.strip(),
                row.form.name.data or "",
                row.form.primary.data,
                row.form.notes.data or "",
                suggested=row.form.is_suggestion,
                confirmed=row.form.confirmed.data,
            )
            for row in self.diagnoses
            if (row.form.code.data or "").strip()
        ]
        prescriptions = [
            PrescriptionInput(
                row.form.drug.data.strip(),
                row.form.dose.data or "",
                row.form.route.data or "",
                row.form.frequency.data or "",
                row.form.duration.data or "",
                row.form.refills.data or 0,
            )
            for row in self.prescriptions
            if (row.form.drug.data or "").strip()
        ]
        return RecordInput(
            doctor_id=self.doctor_id.data,
            visit_at=local_to_utc(self.visit_at.data, self.zone)
            if self.visit_at.data
            else self.visit_at.data,
            chief_complaint=self.chief_complaint.data or "",
            treatment_plan=self.treatment_plan.data,
            notes=self.notes.data,
            patient_summary=self.patient_summary.data,
            notes_visible_to_patient=bool(self.notes_visible_to_patient.data),
            bp_systolic=self.bp_systolic.data,
            bp_diastolic=self.bp_diastolic.data,
            pulse=self.pulse.data,
            temperature_c=units.to_si("temperature", number(self.temperature), self.unit_system),
            respiratory_rate=self.respiratory_rate.data,
            spo2=self.spo2.data,
            weight_kg=units.to_si("weight", number(self.weight), self.unit_system),
            height_cm=units.to_si("height", number(self.height), self.unit_system),
            unit_system=self.unit_system,
            ascites=self.ascites.data or None,
            encephalopathy=self.encephalopathy.data or None,
            on_dialysis=self.on_dialysis.data,
            follow_up_required=self.follow_up_required.data,
            follow_up_date=self.follow_up_date.data,
            diagnoses=diagnoses,
            prescriptions=prescriptions,
            lab_rows=[{name: row.form[name].data or "" for name in row.form._fields} for row in self.labs],
        )

    def fill_from(self, record) -> None:
        """Show a saved record in the form (GET of the edit page)."""
        for name in (
            "doctor_id",
            "visit_at",
            "chief_complaint",
            "bp_systolic",
            "bp_diastolic",
            "pulse",
            "respiratory_rate",
            "spo2",
            "on_dialysis",
            "treatment_plan",
            "notes",
            "patient_summary",
            "notes_visible_to_patient",
            "follow_up_required",
            "follow_up_date",
        ):
            getattr(self, name).data = getattr(record, name)
        self.visit_at.data = utc_to_local(record.visit_at, self.zone)
        for kind, quantity in units.VITALS.items():
            self[kind].data = units.shown(kind, getattr(record, quantity.field), self.unit_system)
        self.ascites.data = record.ascites or ""
        self.encephalopathy.data = record.encephalopathy or ""
        suggestions = record.unconfirmed_suggestions
        _room_for(self.diagnoses, len(record.diagnoses) + len(suggestions))
        _room_for(self.prescriptions, len(record.prescriptions))
        for row, diagnosis in zip(self.diagnoses, record.diagnoses, strict=False):
            row.form.code.data, row.form.name.data = diagnosis.code, diagnosis.name
            row.form.primary.data, row.form.notes.data = diagnosis.is_primary, diagnosis.notes
        for row, suggestion in zip(self.diagnoses[len(record.diagnoses) :], suggestions, strict=False):
            _fill_suggestion(row.form, suggestion)
        for row, item in zip(self.prescriptions, record.prescriptions, strict=False):
            for name in ("drug", "dose", "route", "frequency", "duration", "refills"):
                getattr(row.form, name).data = getattr(item, name)

    def apply_template(self, version) -> None:
        """Start from a template version: its pre-filled text, follow-up and default diagnoses."""
        self.template_version_id.data = str(version.id)
        for name in ("chief_complaint", "treatment_plan", "notes"):
            if version.prefill.get(name):
                self[name].data = version.prefill[name]
        if version.prefill.get("follow_up_days"):
            self.follow_up_required.data = True
            self.follow_up_date.data = clinic_today(self.zone) + timedelta(
                days=int(version.prefill["follow_up_days"])
            )
        _room_for(self.diagnoses, len(version.default_diagnoses))
        for row, diagnosis in zip(self.diagnoses, version.default_diagnoses, strict=False):
            _fill_suggestion(row.form, diagnosis)

    def suggested_text(self, version) -> set[str]:
        """The text fields still holding what `version` (the record's template) suggested, word for word:
        the page marks them "Suggested by the template" until the clinician changes them."""
        if version is None:
            return set()
        return {
            name
            for name in ("chief_complaint", "treatment_plan", "notes")
            if version.prefill.get(name) and (self[name].data or "").strip() == version.prefill[name].strip()
        }

    def default_visit_time(self) -> None:
        self.visit_at.data = utc_to_local(utcnow(), self.zone).replace(second=0, microsecond=0)


def _fill_suggestion(row: DiagnosisRow, diagnosis: dict) -> None:
    row.code.data, row.name.data = diagnosis["code"], diagnosis["name"]
    row.primary.data = bool(diagnosis.get("primary"))
    row.suggested.data, row.confirmed.data = "1", False


def _room_for(rows: FieldList, filled: int, *, spare: bool = True) -> None:
    """Rows for `filled` saved entries, and an empty one after them when `spare` (within the limit)."""
    wanted = min(filled + (1 if spare else 0), rows.max_entries)
    while len(rows) < wanted:
        rows.append_entry()


class AddendumForm(FlaskForm):
    text = TextAreaField(
        "Addendum", validators=[DataRequired(message="Write the addendum."), Length(max=10000)]
    )


class AllergyForm(FlaskForm):
    substance = StringField("Substance", validators=[DataRequired(), Length(max=200)])
    reaction = StringField("Reaction", validators=[Optional(), Length(max=200)])
    severity = SelectField("Severity", choices=ALLERGY_SEVERITIES)
    status = SelectField("Status", choices=ALLERGY_STATUSES)


class ImmunizationForm(FlaskForm):
    vaccine = StringField("Vaccine", validators=[DataRequired(), Length(max=200)])
    given_on = DateField("Date given", validators=[InputRequired(message="Enter the date.")])
    dose_number = IntegerField("Dose number", validators=[Optional(), NumberRange(1, 10)])
    lot = StringField("Lot", validators=[Optional(), Length(max=60)])
    site = StringField("Site", validators=[Optional(), Length(max=60)])
    given_by = StringField("Given by", validators=[Optional(), Length(max=200)])


class TemplateForm(FlaskForm):
    name = StringField("Name", validators=[DataRequired(), Length(max=120)])
    specialty = StringField("Specialty", validators=[DataRequired(), Length(max=120)])
    description = StringField("Description", validators=[Optional(), Length(max=500)])
    sections = SelectMultipleField(
        "Sections shown",
        choices=SECTIONS,
        widget=ListWidget(prefix_label=False),
        option_widget=CheckboxInput(),
    )
    chief_complaint = StringField("Pre-filled chief complaint", validators=[Optional(), Length(max=500)])
    treatment_plan = TextAreaField("Pre-filled treatment plan", validators=[Optional(), Length(max=10000)])
    notes = TextAreaField("Pre-filled notes", validators=[Optional(), Length(max=10000)])
    follow_up_days = IntegerField("Follow-up after (days)", validators=[Optional()])
    default_diagnoses = StringField(
        "Default diagnoses (ICD-10-CM codes, comma-separated; the first is primary)",
        validators=[Optional(), Length(max=200)],
    )

    def to_input(self) -> TemplateInput:
        codes = [code.strip() for code in (self.default_diagnoses.data or "").split(",") if code.strip()]
        return TemplateInput(
            name=self.name.data or "",
            specialty=self.specialty.data or "",
            description=self.description.data or "",
            sections=list(self.sections.data or []),
            chief_complaint=self.chief_complaint.data or "",
            treatment_plan=self.treatment_plan.data or "",
            notes=self.notes.data or "",
            follow_up_days=self.follow_up_days.data,
            default_diagnosis_codes=codes,
        )

    def fill_from(self, template) -> None:
        version = template.current
        self.name.data, self.specialty.data = template.name, template.specialty
        self.description.data = template.description
        self.sections.data = list(version.sections)
        for name in ("chief_complaint", "treatment_plan", "notes", "follow_up_days"):
            getattr(self, name).data = version.prefill.get(name)
        self.default_diagnoses.data = ", ".join(d["code"] for d in version.default_diagnoses)


class PatientViewForm(FlaskForm):
    """What the patient reads of a finalized record (the record page)."""

    patient_summary = TextAreaField("Summary for the patient", validators=[Optional(), Length(max=5000)])
    notes_visible_to_patient = BooleanField("Let the patient read the notes and addenda")


class ResultHoldForm(FlaskForm):
    reason = TextAreaField("Why the result is held", validators=[Optional(), Length(max=500)])
    until = DateField("Release on", validators=[Optional()])


class ClinicalSettingsForm(FlaskForm):
    unit_system = SelectField("Units for weight, height and temperature", choices=units.UNIT_SYSTEMS)
    score_input_max_age_days = IntegerField(
        "A score's input is old after (days)",
        validators=[InputRequired(message="Enter a number of days.")],
    )
    result_hold_max_days = IntegerField(
        "Longest hold of a result from the patient (days)",
        validators=[Optional()],  # left empty: unchanged
    )
