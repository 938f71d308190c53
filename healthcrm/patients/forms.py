from flask_wtf import FlaskForm
from wtforms import DateField, EmailField, FieldList, Form, FormField, SelectField, StringField
from wtforms.validators import DataRequired, Email, InputRequired, Length, Optional

from .models import CARE_STAGES, SEXES
from .services import EDITABLE_FIELDS


class EmergencyContactForm(Form):
    name = StringField("Name", validators=[Optional(), Length(max=200)])
    relationship = StringField("Relationship", validators=[Optional(), Length(max=60)])
    phone = StringField("Phone", validators=[Optional(), Length(max=40)])


class PatientForm(FlaskForm):
    first_name = StringField("First name", validators=[DataRequired(), Length(max=100)])
    last_name = StringField("Last name", validators=[DataRequired(), Length(max=100)])
    date_of_birth = DateField("Date of birth", validators=[InputRequired(message="Enter a date of birth.")])
    sex = SelectField("Sex", choices=SEXES)
    email = EmailField("Email", validators=[Optional(), Email(), Length(max=254)])
    phone = StringField("Phone", validators=[Optional(), Length(max=40)])
    address_line = StringField("Street address", validators=[Optional(), Length(max=200)])
    city = StringField("City", validators=[Optional(), Length(max=100)])
    state = StringField("State", validators=[Optional(), Length(max=50)])
    postal_code = StringField("ZIP code", validators=[Optional(), Length(max=20)])
    insurance_provider = StringField("Insurance provider", validators=[Optional(), Length(max=120)])
    insurance_member_id = StringField("Member ID", validators=[Optional(), Length(max=60)])
    insurance_group = StringField("Group number", validators=[Optional(), Length(max=60)])
    care_stage = SelectField("Care stage", choices=CARE_STAGES)
    assigned_coach_id = SelectField("Health coach", coerce=int, choices={0: "No coach"})
    emergency_contacts = FieldList(FormField(EmergencyContactForm), min_entries=2, max_entries=2)

    def set_coaches(self, coaches) -> None:
        self.assigned_coach_id.choices = {0: "No coach"} | {coach.id: coach.full_name for coach in coaches}

    def values(self) -> dict:
        return {name: getattr(self, name).data for name in EDITABLE_FIELDS}


class InvitePatientForm(FlaskForm):
    email = EmailField("Email for the portal", validators=[DataRequired(), Email(), Length(max=254)])
