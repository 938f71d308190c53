"""Staff download a patient's accounting of disclosures (the same PDF the patient gets in the portal)."""

from __future__ import annotations

from flask import Blueprint

from ..access import current_actor, requires
from ..files.responses import file_response
from ..files.storage import attachment_disposition
from . import disclosures

bp = Blueprint("disclosures", __name__, url_prefix="/patients/<int:patient_id>")


@bp.get("/disclosures.pdf")
@requires("patient.export")
def pdf(patient_id: int):
    actor = current_actor()
    body = disclosures.disclosures_pdf(actor, patient_id)
    name = disclosures.file_name(actor, patient_id)
    return file_response([body], "application/pdf", attachment_disposition(name), size=len(body))
