"""The patient portal. For now its home page; records, appointments and messages come in later issues."""

from flask import Blueprint, abort
from flask_login import current_user

from ..access import current_actor, requires
from ..patients import services as patients
from ..web import render_page

bp = Blueprint("portal", __name__, url_prefix="/portal")


@bp.get("")
@requires("portal.use")
def home():
    patient = patients.get_patient(current_actor(), current_user.patient_id)
    if patient is None:
        abort(404)
    return render_page("portal/home.html", patient=patient)
