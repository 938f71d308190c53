from flask_wtf import FlaskForm
from wtforms import BooleanField, DateField, EmailField, PasswordField, SelectField, StringField
from wtforms.validators import DataRequired, Email, Length, ValidationError

from .api_tokens import TOKEN_DAY_CHOICES, TOKEN_DEFAULT_DAYS, TOKEN_NAME_MAX_CHARS
from .models import ROLE_LABELS, STAFF_ROLES
from .roles import FRONT_DESK

STAFF_ROLE_CHOICES = {role: ROLE_LABELS[role] for role in STAFF_ROLES}


class LoginForm(FlaskForm):
    email = EmailField("Email", validators=[DataRequired(), Length(max=254)])
    password = PasswordField("Password", validators=[DataRequired(), Length(max=256)])


class MfaForm(FlaskForm):
    code = StringField(
        "Code from your authenticator app, or a recovery code", validators=[DataRequired(), Length(max=20)]
    )


class ForgotPasswordForm(FlaskForm):
    email = EmailField("Email", validators=[DataRequired(), Email(), Length(max=254)])


class NewPasswordForm(FlaskForm):
    password = PasswordField("New password", validators=[DataRequired(), Length(max=256)])
    confirm = PasswordField("Repeat the new password", validators=[DataRequired(), Length(max=256)])

    def validate_confirm(self, field):
        if field.data != self.password.data:
            raise ValidationError("The two passwords are not the same.")


class ChangePasswordForm(NewPasswordForm):
    current_password = PasswordField("Current password", validators=[DataRequired(), Length(max=256)])


class ConfirmMfaForm(FlaskForm):
    code = StringField("6-digit code from the app", validators=[DataRequired(), Length(min=6, max=8)])


class DisableMfaForm(FlaskForm):
    # Shares the security page with the change-password form: its own id keeps each label on its input.
    password = PasswordField(
        "Your password", id="mfa-off-password", validators=[DataRequired(), Length(max=256)]
    )


class InviteStaffForm(FlaskForm):
    full_name = StringField("Full name", validators=[DataRequired(), Length(max=200)])
    email = EmailField("Email", validators=[DataRequired(), Email(), Length(max=254)])
    # The least privileged staff role (no clinical content) unless the admin picks another.
    role = SelectField("Role", choices=STAFF_ROLE_CHOICES, default=FRONT_DESK)


class RoleForm(FlaskForm):
    role = SelectField("Role", choices=STAFF_ROLE_CHOICES)


class ClinicSecurityForm(FlaskForm):
    mfa_required_for_staff = BooleanField("Require two-step sign-in for all staff")


class RegisterForm(FlaskForm):
    code = StringField(
        "Registration code (on the letter from your clinic)", validators=[DataRequired(), Length(max=40)]
    )
    date_of_birth = DateField("Your date of birth", validators=[DataRequired()])
    email = EmailField("Your email", validators=[DataRequired(), Email(), Length(max=254)])


class ApiTokenForm(FlaskForm):
    name = StringField("Name", validators=[DataRequired(), Length(max=TOKEN_NAME_MAX_CHARS)])
    days = SelectField(
        "Expires after",
        choices={str(days): f"{days} days" if days < 365 else "1 year" for days in TOKEN_DAY_CHOICES},
        default=str(TOKEN_DEFAULT_DAYS),
    )
    password = PasswordField("Your password", validators=[DataRequired(), Length(max=256)])
