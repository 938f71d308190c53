"""A patient's whole record as a FHIR R4 Bundle (type "collection"), from what a share of everything would
show (`sharing.content.SharedContent`): so the patient's copy follows the portal's rule (finalized visits,
no hidden notes, no held results) and the clinic's copy is the clinical record.

Codes: ICD-10-CM for conditions, LOINC for vital signs and for lab codes that look like LOINC (others keep
the clinic's own code under a urn: system), UCUM units where the unit is one.
"""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass
from datetime import date, datetime

from ..patients.models import Patient
from ..sharing.content import SharedContent

ICD10 = "http://hl7.org/fhir/sid/icd-10-cm"
LOINC = "http://loinc.org"
UCUM = "http://unitsofmeasure.org"
OBSERVATION_CATEGORY = "http://terminology.hl7.org/CodeSystem/observation-category"
INTERPRETATION = "http://terminology.hl7.org/CodeSystem/v3-ObservationInterpretation"
LOINC_CODE = re.compile(r"^\d{1,7}-\d$")
GENDER = {"male": "male", "female": "female", "other": "other", "m": "male", "f": "female"}
# (record field, LOINC code, display, UCUM unit)
VITALS = [
    ("pulse", "8867-4", "Heart rate", "/min"),
    ("temperature_c", "8310-5", "Body temperature", "Cel"),
    ("respiratory_rate", "9279-1", "Respiratory rate", "/min"),
    ("spo2", "59408-5", "Oxygen saturation in arterial blood by pulse oximetry", "%"),
    ("weight_kg", "29463-7", "Body weight", "kg"),
    ("height_cm", "8302-2", "Body height", "cm"),
]
ALLERGY_SEVERITY = {"mild": "mild", "moderate": "moderate", "severe": "severe", "life-threatening": "severe"}
ALLERGY_STATUS = {"active": "active", "inactive": "inactive", "resolved": "resolved"}


@dataclass(frozen=True)
class ExportedFile:
    """A file put into the export: where it is inside the ZIP and what it is."""

    attachment_id: int
    path: str
    title: str
    content_type: str
    size: int
    sha1_base64: str
    created: datetime


def _instant(moment: datetime) -> str:
    return moment.replace(microsecond=0).isoformat() + "Z"  # naive UTC, as stored


def _day(value: date) -> str:
    return value.isoformat()


def _ref(kind: str, ident: str) -> dict:
    return {"reference": f"{kind}/{ident}"}


def patient_resource(patient: Patient) -> dict:
    resource = {
        "resourceType": "Patient",
        "id": f"patient-{patient.id}",
        "identifier": [{"system": f"urn:healthcrm:clinic:{patient.tenant_id}:mrn", "value": patient.mrn}],
        "name": [{"family": patient.last_name, "given": [patient.first_name]}],
        "gender": GENDER.get((patient.sex or "").lower(), "unknown"),
        "birthDate": _day(patient.date_of_birth),
    }
    telecom = [{"system": "email", "value": patient.email}] if patient.email else []
    telecom += [{"system": "phone", "value": patient.phone}] if patient.phone else []
    if telecom:
        resource["telecom"] = telecom
    if patient.address_line or patient.city:
        address = {"line": [patient.address_line]} if patient.address_line else {}
        address |= {k: v for k, v in (("city", patient.city), ("state", patient.state)) if v}
        if patient.postal_code:
            address["postalCode"] = patient.postal_code
        resource["address"] = [address]
    return resource


def bundle(content: SharedContent, files: list[ExportedFile], now: datetime) -> dict:
    """The Bundle as a dict (JSON-ready)."""
    patient = content.patient
    subject = _ref("Patient", f"patient-{patient.id}")
    resources: list[dict] = [patient_resource(patient)]
    for record in content.records:
        encounter = f"visit-{record.id}"
        resources.append(
            {
                "resourceType": "Encounter",
                "id": encounter,
                "status": "finished",
                "class": {
                    "system": "http://terminology.hl7.org/CodeSystem/v3-ActCode",
                    "code": "AMB",
                    "display": "ambulatory",
                },
                "subject": subject,
                "period": {"start": _instant(record.visit_at)},
                "reasonCode": [{"text": record.chief_complaint}],
            }
        )
        for diagnosis in record.diagnoses:
            resources.append(
                {
                    "resourceType": "Condition",
                    "id": f"diagnosis-{diagnosis.id}",
                    "clinicalStatus": {
                        "coding": [
                            {
                                "system": "http://terminology.hl7.org/CodeSystem/condition-clinical",
                                "code": "active",
                            }
                        ]
                    },
                    "code": {
                        "coding": [{"system": ICD10, "code": diagnosis.code, "display": diagnosis.name}],
                        "text": diagnosis.name,
                    },
                    "subject": subject,
                    "encounter": _ref("Encounter", encounter),
                    "recordedDate": _instant(record.visit_at),
                }
            )
        for prescription in record.prescriptions:
            instruction = " ".join(
                part
                for part in (
                    prescription.dose,
                    prescription.route,
                    prescription.frequency,
                    prescription.duration,
                )
                if part
            )
            resources.append(
                {
                    "resourceType": "MedicationRequest",
                    "id": f"prescription-{prescription.id}",
                    "status": "unknown",
                    "intent": "order",
                    "medicationCodeableConcept": {"text": prescription.drug},
                    "subject": subject,
                    "encounter": _ref("Encounter", encounter),
                    "authoredOn": _instant(record.visit_at),
                    "dosageInstruction": [{"text": instruction}],
                    "dispenseRequest": {"numberOfRepeatsAllowed": prescription.refills or 0},
                }
            )
        resources += _vitals(record, subject, encounter)
    resources += [_lab(lab, subject) for lab in content.labs]
    resources += [_allergy(allergy, subject) for allergy in content.allergies]
    resources += [_immunization(shot, subject) for shot in content.immunizations]
    resources += [_document(file, subject) for file in files]
    return {
        "resourceType": "Bundle",
        "id": str(uuid.uuid4()),
        "type": "collection",
        "timestamp": _instant(now),
        "entry": [{"fullUrl": f"urn:uuid:{uuid.uuid4()}", "resource": r} for r in resources],
    }


def _vital_category() -> list[dict]:
    return [{"coding": [{"system": OBSERVATION_CATEGORY, "code": "vital-signs", "display": "Vital Signs"}]}]


def _quantity(value: float, unit: str) -> dict:
    return {"value": value, "unit": unit, "system": UCUM, "code": unit}


def _vitals(record, subject: dict, encounter: str) -> list[dict]:
    found = []
    base = {
        "resourceType": "Observation",
        "status": "final",
        "category": _vital_category(),
        "subject": subject,
        "encounter": _ref("Encounter", encounter),
        "effectiveDateTime": _instant(record.visit_at),
    }
    if record.bp_systolic and record.bp_diastolic:
        found.append(
            base
            | {
                "id": f"visit-{record.id}-bp",
                "code": {"coding": [{"system": LOINC, "code": "85354-9", "display": "Blood pressure panel"}]},
                "component": [
                    {
                        "code": {"coding": [{"system": LOINC, "code": code, "display": name}]},
                        "valueQuantity": _quantity(value, "mm[Hg]"),
                    }
                    for code, name, value in (
                        ("8480-6", "Systolic blood pressure", record.bp_systolic),
                        ("8462-4", "Diastolic blood pressure", record.bp_diastolic),
                    )
                ],
            }
        )
    for field_name, code, name, unit in VITALS:
        value = getattr(record, field_name)
        if value is not None:
            found.append(
                base
                | {
                    "id": f"visit-{record.id}-{field_name.replace('_', '-')}",
                    "code": {"coding": [{"system": LOINC, "code": code, "display": name}]},
                    "valueQuantity": _quantity(value, unit),
                }
            )
    return found


def _lab(lab, subject: dict) -> dict:
    system = LOINC if LOINC_CODE.match(lab.code or "") else "urn:healthcrm:lab-code"
    resource = {
        "resourceType": "Observation",
        "id": f"lab-{lab.id}",
        "status": "final",
        "category": [
            {"coding": [{"system": OBSERVATION_CATEGORY, "code": "laboratory", "display": "Laboratory"}]}
        ],
        "code": {"coding": [{"system": system, "code": lab.code, "display": lab.name}], "text": lab.name},
        "subject": subject,
        "effectiveDateTime": _instant(lab.observed_at),
    }
    if lab.record_id:
        resource["encounter"] = _ref("Encounter", f"visit-{lab.record_id}")
    if lab.value_numeric is not None:
        resource["valueQuantity"] = {"value": lab.value_numeric} | ({"unit": lab.unit} if lab.unit else {})
    else:
        resource["valueString"] = lab.value_text or ""
    reference = {}
    for side, value in (("low", lab.ref_low), ("high", lab.ref_high)):
        if value is not None:
            reference[side] = {"value": value} | ({"unit": lab.unit} if lab.unit else {})
    if reference:
        resource["referenceRange"] = [reference]
    if lab.flag:
        resource["interpretation"] = [{"coding": [{"system": INTERPRETATION, "code": lab.flag.upper()}]}]
    return resource


def _allergy(allergy, subject: dict) -> dict:
    resource = {
        "resourceType": "AllergyIntolerance",
        "id": f"allergy-{allergy.id}",
        "clinicalStatus": {
            "coding": [
                {
                    "system": "http://terminology.hl7.org/CodeSystem/allergyintolerance-clinical",
                    "code": ALLERGY_STATUS.get(allergy.status, "active"),
                }
            ]
        },
        "code": {"text": allergy.substance},
        "patient": subject,
        "recordedDate": _instant(allergy.recorded_at),
    }
    reaction: dict = {"manifestation": [{"text": allergy.reaction or "Not recorded"}]}
    if allergy.severity in ALLERGY_SEVERITY:
        reaction["severity"] = ALLERGY_SEVERITY[allergy.severity]
    resource["reaction"] = [reaction]
    return resource


def _immunization(shot, subject: dict) -> dict:
    resource = {
        "resourceType": "Immunization",
        "id": f"immunization-{shot.id}",
        "status": "completed",
        "vaccineCode": {"text": shot.vaccine},
        "patient": subject,
        "occurrenceDateTime": _day(shot.given_on),
    }
    if shot.lot:
        resource["lotNumber"] = shot.lot
    if shot.site:
        resource["site"] = {"text": shot.site}
    if shot.dose_number:
        resource["protocolApplied"] = [{"doseNumberPositiveInt": shot.dose_number}]
    return resource


def _document(file: ExportedFile, subject: dict) -> dict:
    return {
        "resourceType": "DocumentReference",
        "id": f"file-{file.attachment_id}",
        "status": "current",
        "subject": subject,
        "date": _instant(file.created),
        "description": file.title,
        "content": [
            {
                "attachment": {
                    "contentType": file.content_type,
                    "url": file.path,
                    "size": file.size,
                    "hash": file.sha1_base64,
                    "title": file.title,
                }
            }
        ],
    }
