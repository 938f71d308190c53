"""The table of the audit coverage matrix: every endpoint of `app.url_map`, classified.

- `CASES`: each way a route reads or changes patient data (an endpoint and method, sometimes in more than one
  variant), with how to call it in a `World` (tests/audit/coverage_world.py) and the audit event it must
  write: its action, resource type and id, and whether it names the patient.
- `NOT_PATIENT_DATA`: endpoints (or one method of one, "endpoint METHOD") that touch no patient's data,
  each with a one-word reason.

tests/audit/test_coverage_matrix.py fails for an endpoint in neither, and for an entry that is no longer a
route, so a new route cannot escape the matrix: add it here.
"""

from __future__ import annotations

import io
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta

from flask import current_app

from healthcrm.accounts import registration
from healthcrm.clock import utcnow
from healthcrm.files import uploads
from healthcrm.records import labs
from healthcrm.records.result_holds import hold_result
from healthcrm.scheduling.models import COMPLETED
from tests.audit.coverage_world import MONDAY_8AM, Who, World
from tests.factories import make_patient
from tests.files import samples

ANY = object()  # a resource id that must be set, whatever it is
SAME = object()  # the patient of the world
TUESDAY = (MONDAY_8AM + timedelta(days=1)).date().isoformat()


@dataclass(frozen=True)
class Call:
    """One request, and what its audit event must name besides the case's action and resource type."""

    url: str
    data: dict | None = None
    json: dict | None = None
    headers: dict = field(default_factory=dict)
    resource_id: object = ANY  # a str, None (no id), or ANY
    patient_id: object = SAME  # the world's patient, another patient's id, or None (or ANY)


@dataclass(frozen=True)
class Case:
    endpoint: str
    method: str
    action: str
    resource_type: str | None
    build: Callable[[World, Who], Call]
    # Whether the event names the patient (False for lists of many patients, e.g. the patient list).
    patient: bool = True
    # Roles the access policy lets in whose request the service itself refuses (403, audited as denied).
    refused_by_service: frozenset[str] = frozenset()
    variant: str = ""
    xfail: str = ""

    @property
    def id(self) -> str:
        return f"{self.endpoint} {self.method}" + (f" ({self.variant})" if self.variant else "")


def _files(*named: tuple[str, bytes]) -> dict:
    return {"file": (io.BytesIO(named[0][1]), named[0][0])}


def _on(
    make: Callable[[World], object], path: str, *, names_patient: bool = False, **call
) -> Callable[[World, Who], Call]:
    """A call about a new object `make` makes: `{id}` in the path is its id, and so is the event's resource
    id (or the patient's, with `names_patient`: an emergency contact's change is a change of the patient)."""

    def build(w: World, who: Who) -> Call:
        made = make(w)
        resource = w.patient.id if names_patient else made.id
        return Call(path.format(id=made.id), **{"resource_id": str(resource), **call})

    return build


HOLD_FORM = {"reason": "Discuss first", "until": (MONDAY_8AM + timedelta(days=5)).date().isoformat()}


# --- patients --------------------------------------------------------------------------------------------


def _patient_form(patient, **changes) -> dict:
    data = {
        "first_name": patient.first_name, "last_name": patient.last_name,
        "date_of_birth": patient.date_of_birth.isoformat(), "sex": patient.sex, "email": patient.email or "",
        "phone": patient.phone or "", "care_stage": patient.care_stage, "assigned_coach_id": "0",
    }  # fmt: skip
    for n in (0, 1):
        data.update({f"emergency_contacts-{n}-{name}": "" for name in ("name", "relationship", "phone")})
    data.update(changes)
    return data


def _new_patient(w: World, who: Who) -> Call:
    form = _patient_form(w.patient, first_name="Nina", last_name=f"New{who.role}", email="")
    return Call("/patients/new", data=form, patient_id=ANY)


def _invite(w: World, who: Who) -> Call:
    fresh = make_patient(w.tenant, email="")
    return Call(
        f"/patients/{fresh.id}/invite",
        data={"email": f"invitee-{fresh.id}@example.com"},
        patient_id=fresh.id,
        resource_id=ANY,
    )


def _issue_code(w: World, who: Who) -> Call:
    fresh = make_patient(w.tenant)
    return Call(f"/patients/{fresh.id}/registration-code", data={}, patient_id=fresh.id)


def _revoke_code(w: World, who: Who) -> Call:
    fresh = make_patient(w.tenant)
    registration.issue_code(w.actor("front_desk"), fresh.id)
    return Call(f"/patients/{fresh.id}/registration-code/revoke", data={}, patient_id=fresh.id)


PATIENTS = [
    Case(
        "patients.index",
        "GET",
        "patient.list",
        "patient",
        lambda w, who: Call("/patients", resource_id=None, patient_id=None),
        patient=False,
    ),
    Case("patients.create", "POST", "patient.create", "patient", _new_patient),
    Case(
        "patients.show",
        "GET",
        "patient.view",
        "patient",
        lambda w, who: Call(f"/patients/{w.patient.id}", resource_id=str(w.patient.id)),
    ),
    Case(
        "patients.edit",
        "GET",
        "patient.view",
        "patient",
        lambda w, who: Call(f"/patients/{w.patient.id}/edit", resource_id=str(w.patient.id)),
    ),
    Case(
        "patients.edit",
        "POST",
        "patient.update",
        "patient",
        lambda w, who: Call(
            f"/patients/{w.patient.id}/edit",
            data=_patient_form(w.patient, phone="555-0199"),
            resource_id=str(w.patient.id),
        ),
    ),
    Case("patients.invite", "POST", "patient.portal_invited", "user", _invite),
    Case(
        "patients.issue_registration_code",
        "POST",
        "patient.registration_code_issued",
        "registration_code",
        _issue_code,
    ),
    Case(
        "patients.revoke_registration_code",
        "POST",
        "patient.registration_code_revoked",
        "registration_code",
        _revoke_code,
    ),
]


# --- records, labs, what the patient sees ---------------------------------------------------------------


def _record_form(w: World, **changes) -> dict:
    data = {
        "doctor_id": str(w.doctor.id), "visit_at": "2030-12-20T09:30", "chief_complaint": "Tired",
        "bp_systolic": "128", "bp_diastolic": "82", "pulse": "76",
        "diagnoses-0-code": "K70.31", "diagnoses-0-primary": "y",
        "prescriptions-0-drug": "Spironolactone", "prescriptions-0-dose": "100 mg",
        "prescriptions-0-route": "oral", "prescriptions-0-frequency": "once daily",
        "treatment_plan": "Low-sodium diet.", "notes": "None.",
    }  # fmt: skip
    data.update(changes)
    return data


def _draft_call(path: str, **call) -> Callable[[World, Who], Call]:
    def build(w: World, who: Who) -> Call:
        draft = w.draft()
        return Call(path.format(id=draft.id), **{"resource_id": str(draft.id), **call})

    return build


def _addendum(w: World, who: Who) -> Call:
    record = w.finalized()
    return Call(
        f"/records/{record.id}/addenda", data={"text": "Corrected the dose."}, resource_id=str(record.id)
    )


def _lab_rows() -> dict:
    return {
        "observed_at": "2030-12-01 09:30", "rows-0-code": "718-7", "rows-0-value": "13.5",
        "rows-0-ref_low": "12", "rows-0-ref_high": "15.5",
    }  # fmt: skip


def _lab_csv(code: str = "2951-2") -> str:
    return ",".join(labs.CSV_COLUMNS) + f"\n{code},Sodium,140,mmol/L,135,145,2030-12-02 08:00\n"


def _lab_import_confirm(w: World, who: Who) -> Call:
    token = labs.issue_import_token(current_app.secret_key, w.patient.id, who.user.id)
    data = {"step": "confirm", "csv_text": _lab_csv(), "import_token": token}
    return Call(f"/patients/{w.patient.id}/labs/import", data=data)


def _lab_import_preview(w: World, who: Who) -> Call:
    data = {"file": (io.BytesIO(_lab_csv().encode()), "labs.csv")}
    return Call(f"/patients/{w.patient.id}/labs/import", data=data, resource_id=str(w.patient.id))


def _held(w: World):
    result = w.lab()
    hold_result(w.actor("doctor"), result.id, "Talk first", (MONDAY_8AM + timedelta(days=5)).date())
    return result


RECORDS = [
    Case(
        "records.index",
        "GET",
        "record.list",
        "record",
        lambda w, who: Call("/records", resource_id=None, patient_id=None),
        patient=False,
    ),
    Case(
        "records.create",
        "GET",
        "patient.view",
        "patient",
        lambda w, who: Call(f"/patients/{w.patient.id}/records/new", resource_id=str(w.patient.id)),
    ),
    Case(
        "records.create",
        "POST",
        "record.create",
        "record",
        lambda w, who: Call(f"/patients/{w.patient.id}/records/new", data=_record_form(w)),
    ),
    Case(
        "records.show",
        "GET",
        "record.view",
        "record",
        lambda w, who: Call(f"/records/{w.record.id}", resource_id=str(w.record.id)),
    ),
    Case("records.edit", "GET", "record.view", "record", _draft_call("/records/{id}/edit")),
    Case(
        "records.edit",
        "POST",
        "record.update",
        "record",
        lambda w, who: _draft_call("/records/{id}/edit", data=_record_form(w))(w, who),
    ),
    Case("records.delete", "POST", "record.delete", "record", _draft_call("/records/{id}/delete", data={})),
    Case(
        "records.finalize",
        "POST",
        "record.finalize",
        "record",
        _draft_call("/records/{id}/finalize", data={}),
    ),
    Case("records.add_addendum", "POST", "record.addendum", "record", _addendum),
    Case(
        "records.add_allergy",
        "POST",
        "allergy.create",
        "allergy",
        lambda w, who: Call(
            f"/patients/{w.patient.id}/allergies",
            data={"substance": "Latex", "reaction": "Rash", "severity": "mild", "status": "active"},
        ),
    ),
    Case(
        "records.add_immunization",
        "POST",
        "immunization.create",
        "immunization",
        lambda w, who: Call(
            f"/patients/{w.patient.id}/immunizations",
            data={"vaccine": "Influenza", "given_on": "2030-10-01", "dose_number": "1", "lot": "FL1"},
        ),
    ),
    Case(
        "labs.index",
        "GET",
        "lab.view",
        "lab_result",
        lambda w, who: Call(f"/patients/{w.patient.id}/labs", resource_id=None),
    ),
    Case(
        "labs.add",
        "POST",
        "lab.create",
        "lab_result",
        lambda w, who: Call(f"/patients/{w.patient.id}/labs/add", data=_lab_rows()),
    ),
    Case(
        "labs.import_labs",
        "GET",
        "patient.view",
        "patient",
        lambda w, who: Call(f"/patients/{w.patient.id}/labs/import", resource_id=str(w.patient.id)),
    ),
    Case("labs.import_labs", "POST", "patient.view", "patient", _lab_import_preview, variant="preview"),
    Case("labs.import_labs", "POST", "lab.import", "lab_import", _lab_import_confirm, variant="confirm"),
    Case("result_holds.hold", "GET", "lab.view", "lab_result", _on(World.lab, "/care/results/{id}/hold")),
    Case(
        "result_holds.hold",
        "POST",
        "result.hold",
        "lab_result",
        _on(World.lab, "/care/results/{id}/hold", data=HOLD_FORM),
    ),
    Case(
        "result_holds.release",
        "POST",
        "result.release",
        "lab_result",
        _on(_held, "/care/results/{id}/release", data={}),
    ),
    Case(
        "result_holds.record_patient_view",
        "POST",
        "record.patient_view_changed",
        "record",
        _on(
            World.finalized,
            "/care/records/{id}/patient-view",
            data={"patient_summary": "All well.", "notes_visible_to_patient": "y"},
        ),
    ),
    Case(
        "disclosures.pdf",
        "GET",
        "patient.disclosures_pdf",
        "patient",
        lambda w, who: Call(f"/patients/{w.patient.id}/disclosures.pdf", resource_id=str(w.patient.id)),
    ),
]


# --- files -----------------------------------------------------------------------------------------------

WRITERS_ONLY = frozenset({"coach"})  # attachment.read without attachment.write


def _attachment_call(path: str, **call) -> Callable[[World, Who], Call]:
    def build(w: World, who: Who) -> Call:
        attachment = w.attachment(versions=2)
        first, second = w.versions(attachment)
        url = path.format(a=attachment.id, v=first.id, v2=second.id, r=attachment.record_id)
        return Call(url, **{"resource_id": str(attachment.id), **call})

    return build


def _bulk(action: str):
    def build(w: World, who: Who) -> Call:
        # Files are deleted and moved only on drafts (a finalized record keeps its files).
        attachment = w.attachment(w.draft() if action != "zip" else None)
        data = {"action": action, "ids": [str(attachment.id)]}
        if action == "move":
            data["target"] = str(w.draft().id)
        resource = attachment.record_id if action == "zip" else attachment.id
        return Call(f"/records/{attachment.record_id}/files/bulk", data=data, resource_id=str(resource))

    return build


def _zip_download(w: World, who: Who) -> Call:
    attachment = w.attachment()
    job = w.zip_job(who.user, w.record, attachment)
    return Call(f"/files/zips/{job.id}/download", resource_id=str(w.record.id))


def _dicom(w: World, who: Who) -> Call:
    attachment = w.attachment(first="dicom")
    version = attachment.current_version_id
    return Call(f"/files/{attachment.id}/versions/{version}/image", resource_id=str(attachment.id))


def _start_upload(w: World, who: Who) -> Call:
    draft = w.draft()  # a finalized record takes files only with an addendum
    body = {
        "name": "scan.png",
        "size": len(samples.png()),
        "type": "image/png",
        "fingerprint": f"fp-{who.role}",
    }
    return Call(f"/records/{draft.id}/uploads", json=body, resource_id=str(draft.id))


def _complete_upload(w: World, who: Who) -> Call:
    data = samples.png()
    plan = uploads.start_upload(
        who.actor, w.draft().id, f"sent-{who.role}.png", len(data), "image/png", f"c-{who.role}"
    )
    sent = who.client.post(
        plan.post["url"], data={**plan.post["fields"], "file": (io.BytesIO(data), "f")}, csrf=False
    )
    assert sent.status_code in (200, 201, 204), sent.status_code
    return Call(f"/uploads/{plan.session.public_id}/complete", json={"parts": []})


def _staff_document_upload(w: World, who: Who) -> Call:
    return Call(f"/care/documents/patients/{w.patient.id}", data=_files(("letter.pdf", samples.pdf())))


def _visibility(w: World, who: Who) -> Call:
    document = w.document(by="doctor", visible=False)
    return Call(
        f"/care/documents/patients/{w.patient.id}/{document.id}/visibility",
        data={"visible": "1"},
        resource_id=str(document.id),
    )


def _portal_document(path: str) -> Callable[[World, Who], Call]:
    def build(w: World, who: Who) -> Call:
        document = w.document()
        return Call(path.format(id=document.id), resource_id=str(document.id))

    return build


def _archived(path: str, *, document: bool = False, **call) -> Callable[[World, Who], Call]:
    """A call about a new archived version: `{a}` its attachment, `{v}` its id; the event names the
    attachment unless `resource` says the version."""

    def build(w: World, who: Who) -> Call:
        version = w.archived(document=document)
        resource = call.pop("resource", "attachment")
        url = path.format(a=version.attachment_id, v=version.id)
        resource_id = version.id if resource == "version" else version.attachment_id
        return Call(url, **{"resource_id": str(resource_id), **call})

    return build


FILES = [
    Case(
        "attachments.record_files_fragment",
        "GET",
        "attachment.list",
        "record",
        lambda w, who: Call(f"/records/{w.record.id}/files", resource_id=str(w.record.id)),
    ),
    Case("attachments.bulk", "POST", "attachment.zip", "record", _bulk("zip"), variant="zip"),
    Case(
        "attachments.bulk",
        "POST",
        "attachment.delete",
        "attachment",
        _bulk("delete"),
        refused_by_service=WRITERS_ONLY,
        variant="delete",
    ),
    Case(
        "attachments.bulk",
        "POST",
        "attachment.move",
        "attachment",
        _bulk("move"),
        refused_by_service=WRITERS_ONLY,
        variant="move",
    ),
    Case("attachments.zip_download", "GET", "attachment.zip_download", "record", _zip_download),
    Case("attachments.show", "GET", "attachment.show", "attachment", _attachment_call("/files/{a}")),
    Case(
        "attachments.compare",
        "GET",
        "attachment.view",
        "attachment",
        _attachment_call("/files/{a}/compare?left={v}&right={v2}"),
    ),
    Case(
        "attachments.restore",
        "POST",
        "attachment.restore",
        "attachment",
        _attachment_call("/files/{a}/versions/{v}/restore", data={}),
    ),
    Case(
        "attachments.download",
        "GET",
        "attachment.download",
        "attachment",
        _attachment_call("/files/{a}/versions/{v}/download"),
    ),
    Case(
        "attachments.view",
        "GET",
        "attachment.view",
        "attachment",
        _attachment_call("/files/{a}/versions/{v}/view"),
    ),
    Case(
        "attachments.thumb",
        "GET",
        "attachment.preview",
        "attachment",
        _attachment_call("/files/{a}/versions/{v2}/thumb"),
    ),
    Case("attachments.image", "GET", "attachment.preview", "attachment", _dicom),
    Case(
        "storage_restores.staff_archived",
        "GET",
        "attachment.show",
        "attachment",
        _archived("/files/{a}/versions/{v}/archived"),
    ),
    Case(
        "storage_restores.staff_restore",
        "POST",
        "file.restore_requested",
        "attachment_version",
        _archived("/files/{a}/versions/{v}/archived", data={"tier": "Standard"}, resource="version"),
    ),
    Case(
        "storage_restores.portal_archived",
        "GET",
        "attachment.show",
        "attachment",
        _archived("/portal/documents/{a}/archived", document=True),
    ),
    Case(
        "storage_restores.portal_restore",
        "POST",
        "file.restore_requested",
        "attachment_version",
        _archived(
            "/portal/documents/{a}/archived", document=True, data={"tier": "Standard"}, resource="version"
        ),
    ),
    Case("attachments.start_upload", "POST", "attachment.upload_start", "record", _start_upload),
    Case("attachments.complete_upload", "POST", "attachment.upload", "attachment", _complete_upload),
    Case(
        "patient_documents.staff_index",
        "GET",
        "attachment.list",
        "patient",
        lambda w, who: Call(f"/care/documents/patients/{w.patient.id}", resource_id=str(w.patient.id)),
    ),
    Case("patient_documents.staff_upload", "POST", "attachment.upload", "attachment", _staff_document_upload),
    Case("patient_documents.visibility", "POST", "attachment.show_to_patient", "attachment", _visibility),
    Case(
        "portal_documents.index",
        "GET",
        "attachment.list",
        "patient",
        lambda w, who: Call("/portal/documents", resource_id=str(w.patient.id)),
    ),
    Case(
        "portal_documents.upload",
        "POST",
        "attachment.upload",
        "attachment",
        lambda w, who: Call("/portal/documents", data=_files(("mine.pdf", samples.pdf()))),
    ),
    Case(
        "portal_documents.view",
        "GET",
        "attachment.view",
        "attachment",
        _portal_document("/portal/documents/{id}/view"),
    ),
    Case(
        "portal_documents.download",
        "GET",
        "attachment.download",
        "attachment",
        _portal_document("/portal/documents/{id}/download"),
    ),
]


# --- messages, tasks, self-care (the care team's side and the portal) -----------------------------------


def _thread_call(path: str, **call) -> Callable[[World, Who], Call]:
    def build(w: World, who: Who) -> Call:
        thread = w.thread()
        return Call(path.format(t=thread.id), **{"resource_id": str(thread.id), **call})

    return build


def _thread_file(prefix: str) -> Callable[[World, Who], Call]:
    def build(w: World, who: Who) -> Call:
        thread = w.thread(with_file=True)
        attachment_id = w.thread_attachment_id(thread)
        return Call(f"{prefix}/{thread.id}/files/{attachment_id}", resource_id=str(attachment_id))

    return build


def _task_call(action: str, data: Callable[[World], dict] | None = None, *, wait_first: bool = False):
    def build(w: World, who: Who) -> Call:
        task = w.task()
        if wait_first:
            from healthcrm.care import services as care

            care.claim_task(w.actor("admin"), task.id)
            care.wait_on_patient(w.actor("admin"), task.id)
        form = data(w) if data else {}
        return Call(f"/care/tasks/{task.id}/{action}", data=form, resource_id=str(task.id))

    return build


def _refill_decide(w: World, who: Who) -> Call:
    request = w.refill()
    return Call(
        f"/care/refills/{request.id}/decide", data={"decision": "approve"}, resource_id=str(request.id)
    )


def _change_decide(w: World, who: Who) -> Call:
    request = w.change_request()
    return Call(
        f"/care/change-requests/{request.id}/decide",
        data={"decision": "approve"},
        resource_id=str(request.id),
    )


def _care_plan_post(w: World, who: Who) -> Call:
    from healthcrm.selfcare import care_plans

    current = care_plans.current_version(w.tenant.id, w.patient.id)
    data = {
        "goals": f"Walk ({who.role})",
        "instructions": "Daily.",
        "based_on": str(current.number if current else 0),
    }
    return Call(f"/care/patients/{w.patient.id}/care-plan", data=data)


CARE = [
    Case(
        "care_inbox.index",
        "GET",
        "message.inbox_list",
        "inbox",
        lambda w, who: Call("/care/inbox", resource_id="new", patient_id=None),
        patient=False,
    ),
    Case("care_inbox.show", "GET", "message.thread_view", "thread", _thread_call("/care/inbox/{t}")),
    Case(
        "care_inbox.reply",
        "POST",
        "message.reply",
        "message",
        _thread_call("/care/inbox/{t}/reply", data={"body": "We will call you."}, resource_id=ANY),
    ),
    Case(
        "care_inbox.reassign",
        "POST",
        "message.thread_reassign",
        "thread",
        lambda w, who: _thread_call("/care/inbox/{t}/reassign", data={"to": f"user:{w.staff['nurse'].id}"})(
            w, who
        ),
    ),
    Case(
        "care_inbox.close",
        "POST",
        "message.thread_close",
        "thread",
        _thread_call("/care/inbox/{t}/close", data={}),
    ),
    Case(
        "care_inbox.messaging",
        "POST",
        "patient.messaging_changed",
        "patient",
        lambda w, who: Call(
            f"/care/inbox/patients/{w.patient.id}/messaging",
            data={"enabled": "on"},
            resource_id=str(w.patient.id),
        ),
    ),
    Case("care_inbox.attachment", "GET", "attachment.download", "attachment", _thread_file("/care/inbox")),
    Case(
        "care_tasks.index",
        "GET",
        "task.list",
        "care_task",
        lambda w, who: Call("/care/tasks", resource_id=None, patient_id=None),
        patient=False,
    ),
    Case("care_tasks.claim", "POST", "task.claimed", "care_task", _task_call("claim")),
    Case(
        "care_tasks.reassign",
        "POST",
        "task.reassigned",
        "care_task",
        _task_call("reassign", lambda w: {"assignee_id": str(w.staff["nurse"].id)}),
    ),
    Case("care_tasks.wait", "POST", "task.waiting", "care_task", _task_call("wait")),
    Case("care_tasks.resume", "POST", "task.resumed", "care_task", _task_call("resume", wait_first=True)),
    Case(
        "care_tasks.complete",
        "POST",
        "task.completed",
        "care_task",
        _task_call("complete", lambda w: {"note": "Called back."}),
    ),
    Case(
        "care_changes.index",
        "GET",
        "profile.change_queue",
        "profile_change_queue",
        lambda w, who: Call("/care/change-requests", resource_id=None, patient_id=None),
        patient=False,
    ),
    Case("care_changes.decide", "POST", "profile.change_approve", "profile_change_request", _change_decide),
    Case(
        "care_selfcare.refills",
        "GET",
        "refill.queue",
        "refill_queue",
        lambda w, who: Call("/care/refills", resource_id=None, patient_id=None),
        patient=False,
    ),
    Case("care_selfcare.refill_decide", "POST", "refill.approve", "refill_request", _refill_decide),
    Case(
        "care_selfcare.patient",
        "GET",
        "care_plan.view",
        "patient",
        lambda w, who: Call(f"/care/patients/{w.patient.id}/self-care", resource_id=str(w.patient.id)),
    ),
    Case(
        "care_selfcare.schedule_edit",
        "POST",
        "prescription.schedule",
        "prescription",
        lambda w, who: Call(
            f"/care/patients/{w.patient.id}/prescriptions/{w.prescription.id}/schedule",
            data={"times": "08:00"},
            resource_id=str(w.prescription.id),
        ),
    ),
    Case(
        "care_selfcare.care_plan_edit",
        "GET",
        "care_plan.view",
        "patient",
        lambda w, who: Call(f"/care/patients/{w.patient.id}/care-plan", resource_id=str(w.patient.id)),
    ),
    Case("care_selfcare.care_plan_edit", "POST", "care_plan.publish", "care_plan_version", _care_plan_post),
]


def _portal_reply(w: World, who: Who) -> Call:
    thread = w.thread()
    return Call(f"/portal/messages/{thread.id}", data={"body": "Thank you."})


def _dose(w: World, who: Who) -> Call:
    from healthcrm.selfcare import adherence

    adherence.set_schedule(w.actor("doctor"), w.patient.id, w.prescription.id, "08:00")
    data = {
        "prescription_id": str(w.prescription.id),
        "day": MONDAY_8AM.date().isoformat(),
        "slot": "08:00",
        "status": "taken",
    }
    return Call("/portal/doses/mark", data=data)


def _acknowledge(w: World, who: Who) -> Call:
    version = w.care_plan()
    return Call("/portal/care-plan/acknowledge", data={"version_id": str(version.id)})


def _symptom(w: World, who: Who) -> Call:
    data = {
        "symptom": "fatigue",
        "severity": "3",
        "notes": "",
        "occurred_at": f"{MONDAY_8AM.date().isoformat()}T07:30",
    }
    return Call("/portal/symptoms", data=data)


PORTAL = [
    Case(
        "portal.home",
        "GET",
        "portal.home.view",
        "patient",
        lambda w, who: Call("/portal", resource_id=str(w.patient.id)),
    ),
    Case(
        "portal_timeline.index",
        "GET",
        "portal.timeline.view",
        "patient",
        lambda w, who: Call("/portal/timeline", resource_id=str(w.patient.id)),
    ),
    Case(
        "portal_access.index",
        "GET",
        "portal.access_view",
        "patient",
        lambda w, who: Call("/portal/access", resource_id=str(w.patient.id)),
    ),
    Case(
        "portal_access.disclosures_pdf",
        "GET",
        "portal.disclosures_pdf",
        "patient",
        lambda w, who: Call("/portal/access/disclosures.pdf", resource_id=str(w.patient.id)),
    ),
    Case(
        "portal_records.index",
        "GET",
        "portal.records_view",
        "record",
        lambda w, who: Call("/portal/records", resource_id=None),
    ),
    Case(
        "portal_records.show",
        "GET",
        "portal.record_view",
        "record",
        lambda w, who: Call(f"/portal/records/{w.record.id}", resource_id=str(w.record.id)),
    ),
    Case(
        "portal_records.labs",
        "GET",
        "portal.labs_view",
        "lab_result",
        lambda w, who: Call("/portal/records/results", resource_id=None),
    ),
    Case(
        "portal_records.lab",
        "GET",
        "portal.lab_view",
        "lab_result",
        lambda w, who: Call("/portal/records/results/1742-6"),
    ),
    Case(
        "portal_records.medications",
        "GET",
        "portal.medications_view",
        "prescription",
        lambda w, who: Call("/portal/records/medications", resource_id=None),
    ),
    Case(
        "portal_records.health",
        "GET",
        "portal.health_view",
        "patient",
        lambda w, who: Call("/portal/records/health", resource_id=str(w.patient.id)),
    ),
    Case(
        "portal_messages.index",
        "GET",
        "message.thread_list",
        "patient",
        lambda w, who: Call("/portal/messages", resource_id=str(w.patient.id)),
    ),
    Case(
        "portal_messages.new",
        "POST",
        "message.thread_create",
        "thread",
        lambda w, who: Call(
            "/portal/messages/new", data={"to": "coach", "subject": "Swollen ankles", "body": "Since Friday."}
        ),
    ),
    Case(
        "portal_messages.show", "GET", "message.thread_view", "thread", _thread_call("/portal/messages/{t}")
    ),
    Case("portal_messages.show", "POST", "message.send", "message", _portal_reply),
    Case(
        "portal_messages.attachment",
        "GET",
        "attachment.download",
        "attachment",
        _thread_file("/portal/messages"),
    ),
    Case(
        "portal_profile.index",
        "GET",
        "profile.view",
        "patient",
        lambda w, who: Call("/portal/profile", resource_id=str(w.patient.id)),
    ),
    Case(
        "portal_profile.contact",
        "POST",
        "patient.update",
        "patient",
        lambda w, who: Call(
            "/portal/profile/contact",
            data={"email": w.patient.email, "phone": "555 0188", "address": "1 Main St"},
            resource_id=str(w.patient.id),
        ),
    ),
    Case(
        "portal_profile.insurance",
        "POST",
        "patient.update",
        "patient",
        lambda w, who: Call(
            "/portal/profile/insurance",
            data={"insurance_provider": "Aetna", "insurance_policy_number": "P-1"},
            resource_id=str(w.patient.id),
        ),
    ),
    Case(
        "portal_profile.contact_add",
        "POST",
        "patient.update",
        "patient",
        lambda w, who: Call(
            "/portal/profile/emergency-contacts",
            data={"name": "Ana", "relationship": "Sister", "phone": "555 0102"},
            resource_id=str(w.patient.id),
        ),
    ),
    Case(
        "portal_profile.contact_edit",
        "POST",
        "patient.update",
        "patient",
        _on(
            World.contact,
            "/portal/profile/emergency-contacts/{id}",
            data={"name": "Ana B", "relationship": "Sister", "phone": "555 0103"},
            names_patient=True,
        ),
    ),
    Case(
        "portal_profile.contact_remove",
        "POST",
        "patient.update",
        "patient",
        _on(World.contact, "/portal/profile/emergency-contacts/{id}/remove", data={}, names_patient=True),
    ),
    Case(
        "portal_profile.change_request",
        "POST",
        "profile.change_request",
        "profile_change_request",
        lambda w, who: Call(
            "/portal/profile/change-request",
            data={
                "first_name": w.patient.first_name,
                "last_name": "Married-Name",
                "date_of_birth": w.patient.date_of_birth.isoformat(),
                "sex": w.patient.sex,
                "reason": "Married",
            },
        ),
    ),
    Case(
        "portal_profile.change_withdraw",
        "POST",
        "profile.change_withdraw",
        "profile_change_request",
        _on(World.change_request, "/portal/profile/change-request/{id}/withdraw", data={}),
    ),
    Case(
        "portal_selfcare.refills",
        "GET",
        "refill.list",
        "patient",
        lambda w, who: Call("/portal/refills", resource_id=str(w.patient.id)),
    ),
    Case(
        "portal_selfcare.refill_new",
        "GET",
        "refill.list",
        "patient",
        lambda w, who: Call("/portal/refills/new", resource_id=str(w.patient.id)),
    ),
    Case(
        "portal_selfcare.refill_new",
        "POST",
        "refill.request",
        "refill_request",
        lambda w, who: Call(
            "/portal/refills/new", data={"prescription_id": str(w.prescription.id), "note": "Almost out"}
        ),
    ),
    Case(
        "portal_selfcare.symptoms",
        "GET",
        "symptom.list",
        "patient",
        lambda w, who: Call("/portal/symptoms", resource_id=str(w.patient.id)),
    ),
    Case("portal_selfcare.symptoms", "POST", "symptom.create", "symptom_entry", _symptom),
    Case(
        "portal_selfcare.doses",
        "GET",
        "dose.list",
        "patient",
        lambda w, who: Call("/portal/doses", resource_id=str(w.patient.id)),
    ),
    Case("portal_selfcare.dose_mark", "POST", "dose.mark", "dose_mark", _dose),
    Case(
        "portal_selfcare.care_plan",
        "GET",
        "care_plan.view",
        "care_plan_version",
        _on(World.care_plan, "/portal/care-plan"),
    ),
    Case(
        "portal_selfcare.care_plan_acknowledge",
        "POST",
        "care_plan.acknowledge",
        "care_plan_version",
        _acknowledge,
    ),
    Case(
        "portal_export.start",
        "POST",
        "patient.export",
        "patient",
        lambda w, who: Call("/portal/export", data={}, resource_id=str(w.patient.id)),
    ),
    Case(
        "portal_export.download",
        "GET",
        "patient.export_download",
        "patient_export",
        lambda w, who: Call(f"/portal/export/{w.export_job(who.user).id}/download"),
    ),
    Case(
        "patient_export.staff_start",
        "POST",
        "patient.export",
        "patient",
        lambda w, who: Call(f"/patients/{w.patient.id}/export", data={}, resource_id=str(w.patient.id)),
    ),
    Case(
        "patient_export.staff_download",
        "GET",
        "patient.export_download",
        "patient_export",
        lambda w, who: Call(f"/patients/{w.patient.id}/export/{w.export_job(who.user).id}/download"),
    ),
]


# --- appointments ----------------------------------------------------------------------------------------


def _appointment_call(path: str, status: str | None = None, **call) -> Callable[[World, Who], Call]:
    def build(w: World, who: Who) -> Call:
        row = w.appointment(status) if status else w.appointment()
        return Call(path.format(a=row.id), **{"resource_id": str(row.id), **call})

    return build


def _staff_book(w: World, who: Who) -> Call:
    starts = w.free_slot()
    local = starts + timedelta(hours=1)  # Berlin in winter
    data = {
        "patient_id": str(w.patient.id), "type_id": str(w.appointment_type.id),
        "provider_id": str(w.doctor.id), "date": local.date().isoformat(), "time": local.strftime("%H:%M"),
        "note": "",
    }  # fmt: skip
    return Call("/schedule/book", data=data)


def _reschedule(w: World, who: Who) -> Call:
    row = w.appointment()
    local = w.free_slot() + timedelta(hours=1)
    data = {
        "date": local.date().isoformat(),
        "time": local.strftime("%H:%M"),
        "provider_id": str(w.doctor.id),
    }
    return Call(f"/schedule/appointments/{row.id}/reschedule", data=data, resource_id=str(row.id))


def _portal_hold(w: World, who: Who) -> Call:
    starts = w.free_slot()
    data = {
        "type_id": str(w.appointment_type.id),
        "provider_id": str(w.doctor.id),
        "starts_at": starts.isoformat(),
    }
    return Call("/portal/appointments/hold", data=data)


def _hold_call(path: str, **call) -> Callable[[World, Who], Call]:
    def build(w: World, who: Who) -> Call:
        hold = w.hold()
        return Call(path.format(h=hold.id), **{"resource_id": str(hold.id), **call})

    return build


def _offer_call(path: str, **call) -> Callable[[World, Who], Call]:
    def build(w: World, who: Who) -> Call:
        offer = w.offer()
        return Call(path.format(o=offer.id), **{"resource_id": str(offer.id), **call})

    return build


def _waitlist_join(w: World, who: Who) -> Call:
    day = (MONDAY_8AM + timedelta(days=2)).date()
    data = {
        "type_id": str(w.appointment_type.id), "provider_id": str(w.doctor.id),
        "earliest_day": day.isoformat(), "latest_day": (day + timedelta(days=7)).isoformat(),
    }  # fmt: skip
    return Call("/portal/waitlist/", data=data)


def _withdraw(w: World, who: Who) -> Call:
    entry = w.waitlist_entry()
    return Call(f"/portal/waitlist/{entry.id}/withdraw", data={}, resource_id=str(entry.id))


SCHEDULING = [
    Case(
        "schedule.index",
        "GET",
        "appointment.list",
        "appointment",
        lambda w, who: Call("/schedule", resource_id=None, patient_id=None),
        patient=False,
    ),
    Case(
        "schedule.day",
        "GET",
        "appointment.list",
        "appointment",
        lambda w, who: Call(f"/schedule/day?provider_id={w.doctor.id}", resource_id=None, patient_id=None),
        patient=False,
    ),
    Case(
        "schedule.week",
        "GET",
        "appointment.list",
        "appointment",
        lambda w, who: Call(f"/schedule/week?provider_id={w.doctor.id}", resource_id=None, patient_id=None),
        patient=False,
    ),
    Case(
        "schedule.appointment",
        "GET",
        "appointment.read",
        "appointment",
        _appointment_call("/schedule/appointments/{a}"),
    ),
    Case(
        "schedule.book",
        "GET",
        "patient.view",
        "patient",
        lambda w, who: Call(f"/schedule/book?patient_id={w.patient.id}", resource_id=str(w.patient.id)),
    ),
    Case("schedule.book_post", "POST", "appointment.book", "appointment", _staff_book),
    Case(
        "schedule.cancel",
        "POST",
        "appointment.cancel",
        "appointment",
        _appointment_call("/schedule/appointments/{a}/cancel", data={"reason": "Ill"}),
    ),
    Case(
        "schedule.change_status",
        "POST",
        "appointment.check_in",
        "appointment",
        _appointment_call("/schedule/appointments/{a}/status", data={"action": "check_in"}),
    ),
    Case("schedule.reschedule", "POST", "appointment.reschedule", "appointment", _reschedule),
    Case(
        "schedule.start_record",
        "POST",
        "appointment.visit_record",
        "appointment",
        _appointment_call("/schedule/appointments/{a}/record", COMPLETED, data={}),
    ),
    Case(
        "portal_appointments.index",
        "GET",
        "appointment.list",
        "patient",
        lambda w, who: Call("/portal/appointments/", resource_id=str(w.patient.id)),
    ),
    Case(
        "portal_appointments.book",
        "GET",
        "appointment.slots",
        "appointment_type",
        lambda w, who: Call(
            f"/portal/appointments/book?type_id={w.appointment_type.id}",
            resource_id=str(w.appointment_type.id),
        ),
    ),
    Case("portal_appointments.hold", "POST", "appointment.hold", "appointment", _portal_hold),
    Case(
        "portal_appointments.hold_show",
        "GET",
        "appointment.hold_view",
        "appointment",
        _hold_call("/portal/appointments/hold/{h}"),
    ),
    Case(
        "portal_appointments.confirm",
        "POST",
        "appointment.book",
        "appointment",
        _hold_call("/portal/appointments/hold/{h}/confirm", data={"note": ""}),
    ),
    Case(
        "portal_appointments.release",
        "POST",
        "appointment.release",
        "appointment",
        _hold_call("/portal/appointments/hold/{h}/release", data={}),
    ),
    Case(
        "portal_appointments.show",
        "GET",
        "appointment.view",
        "appointment",
        _appointment_call("/portal/appointments/{a}"),
    ),
    Case(
        "portal_appointments.reschedule",
        "GET",
        "appointment.slots",
        "appointment",
        _appointment_call("/portal/appointments/{a}/reschedule"),
    ),
    Case(
        "portal_appointments.cancel",
        "POST",
        "appointment.cancel",
        "appointment",
        _appointment_call("/portal/appointments/{a}/cancel", data={"reason": "Better"}),
    ),
    Case(
        "portal_appointments.calendar",
        "GET",
        "appointment.calendar",
        "appointment",
        _appointment_call("/portal/appointments/{a}/calendar.ics"),
    ),
    Case(
        "portal_waitlist.index",
        "GET",
        "waitlist.view",
        "patient",
        lambda w, who: Call("/portal/waitlist/", resource_id=str(w.patient.id)),
    ),
    Case("portal_waitlist.index", "POST", "waitlist.join", "waitlist_entry", _waitlist_join),
    Case("portal_waitlist.withdraw", "POST", "waitlist.withdraw", "waitlist_entry", _withdraw),
    Case(
        "portal_waitlist.offer",
        "GET",
        "waitlist.offer_view",
        "waitlist_offer",
        _offer_call("/portal/waitlist/offers/{o}"),
    ),
    Case(
        "portal_waitlist.accept",
        "POST",
        "waitlist.accept",
        "waitlist_offer",
        _offer_call("/portal/waitlist/offers/{o}/accept", data={}),
    ),
    Case(
        "portal_waitlist.decline",
        "POST",
        "waitlist.decline",
        "waitlist_offer",
        _offer_call("/portal/waitlist/offers/{o}/decline", data={}),
    ),
]


# --- sharing, and the provider's side of a link ---------------------------------------------------------


def _share_form(**changes) -> dict:
    data = {
        "recipients-0-name": "Dr. Ana Ruiz",
        "recipients-0-email": "ana@hospital.example.com",
        "scope": "all",
        "days": "30",
        "message": "",
    }
    data.update(changes)
    return data


def _share_call(
    path: str, data: Callable[[World], dict] | dict | None = None
) -> Callable[[World, Who], Call]:
    def build(w: World, who: Who) -> Call:
        share = w.share(created_at=utcnow())  # a link is extended at most a year from when it was made
        form = data(w) if callable(data) else data
        return Call(path.format(s=share.id), data=form, resource_id=str(share.id))

    return build


def _until(w: World) -> dict:
    return {"until": (MONDAY_8AM + timedelta(days=60)).date().isoformat()}


def _provider_call(path: str, kind: str = "", **call) -> Callable[[World, Who], Call]:
    def build(w: World, who: Who) -> Call:
        extra = {}
        if "{a}" in path:
            extra["a"] = w.attachment(first="pdf").id
        if "{j}" in path:
            extra["j"] = w.provider_export_job(who).id
        return Call(f"/s/{who.token}" + path.format(**extra), **{"resource_id": str(who.share.id), **call})

    return build


def _provider_steps(w: World, who: Who) -> Call:
    fresh = w.unadmitted_provider()
    who.client, who.share, who.token = fresh.client, fresh.share, fresh.token
    return Call(f"/s/{fresh.token}/check", resource_id=str(fresh.share.id))


SHARING = [
    Case(
        "sharing.portal_index",
        "GET",
        "share.list",
        "patient",
        lambda w, who: Call("/portal/shares", resource_id=str(w.patient.id)),
    ),
    Case(
        "sharing.portal_create",
        "GET",
        "record.list",
        "record",
        lambda w, who: Call("/portal/shares/new", resource_id=None),
    ),
    Case(
        "sharing.portal_create",
        "POST",
        "share.create",
        "share",
        lambda w, who: Call("/portal/shares/new", data=_share_form()),
    ),
    Case(
        "sharing.portal_create",
        "POST",
        "share.preview",
        "patient",
        lambda w, who: Call("/portal/shares/new", data=_share_form(preview="1")),
        variant="preview",
    ),
    Case(
        "sharing.staff_index",
        "GET",
        "share.list",
        "patient",
        lambda w, who: Call(f"/patients/{w.patient.id}/shares", resource_id=str(w.patient.id)),
    ),
    Case(
        "sharing.staff_create",
        "GET",
        "record.list",
        "record",
        lambda w, who: Call(f"/patients/{w.patient.id}/shares/new", resource_id=None),
    ),
    Case(
        "sharing.staff_create",
        "POST",
        "share.create",
        "share",
        lambda w, who: Call(f"/patients/{w.patient.id}/shares/new", data=_share_form()),
    ),
    Case(
        "sharing.staff_create",
        "POST",
        "share.preview",
        "patient",
        lambda w, who: Call(f"/patients/{w.patient.id}/shares/new", data=_share_form(preview="1")),
        variant="preview",
    ),
    Case("sharing.log", "GET", "share.log", "share", _share_call("/shares/{s}")),
    Case("sharing.revoke", "POST", "share.revoke", "share", _share_call("/shares/{s}/revoke", {})),
    Case("sharing.extend", "POST", "share.extend", "share", _share_call("/shares/{s}/extend", _until)),
    Case(
        "sharing.change_passcode",
        "POST",
        "share.passcode",
        "share",
        _share_call("/shares/{s}/passcode", {"passcode": "new-passcode-9"}),
    ),
    Case("sharing.send_again", "POST", "share.resend", "share", _share_call("/shares/{s}/send", {})),
    Case(
        "sharing.overview",
        "GET",
        "share.overview",
        "share",
        lambda w, who: Call("/admin/sharing", resource_id=None, patient_id=None),
        patient=False,
    ),
    Case("provider.steps", "GET", "share.open", "share", _provider_steps),
    Case("provider.tab", "GET", "share.view", "share", _provider_call("/summary"), variant="summary"),
    Case("provider.tab", "GET", "share.view", "share", _provider_call("/labs"), variant="labs"),
    Case("provider.tab", "GET", "share.view", "share", _provider_call("/records"), variant="records"),
    Case("provider.tab", "GET", "share.view", "share", _provider_call("/files"), variant="files"),
    Case("provider.tab", "GET", "share.view", "share", _provider_call("/scores"), variant="scores"),
    Case("provider.print_view", "GET", "share.view", "share", _provider_call("/print")),
    Case("provider.file_page", "GET", "share.view", "share", _provider_call("/files/{a}")),
    Case("provider.preview", "GET", "share.file_preview", "share", _provider_call("/files/{a}/pages/1.png")),
    Case("provider.download", "GET", "share.download", "share", _provider_call("/files/{a}/download")),
    Case("provider.export_labs", "GET", "share.export", "share", _provider_call("/export/labs.csv")),
    Case(
        "provider.export_download", "GET", "share.export", "share", _provider_call("/export/pdf/{j}/download")
    ),
]


# --- retention -------------------------------------------------------------------------------------------


def _old(path: str, *, named: bool = True, **call) -> Callable[[World, Who], Call]:
    def build(w: World, who: Who) -> Call:
        patient = w.old_patient()
        if "release" in path:
            from healthcrm.retention import services as retention

            retention.place_hold(w.actor("admin"), patient.id, "Case 7")
        data = call.get("data")
        if data is not None:
            data = {key: (str(patient.id) if value == "{p}" else value) for key, value in data.items()}
        if not named:  # a purge plans for several patients at once: its event names none of them
            return Call(path.format(p=patient.id), data=data, patient_id=None, resource_id=None)
        return Call(path.format(p=patient.id), data=data, patient_id=patient.id)

    return build


RETENTION = [
    Case(
        "retention_purge.due",
        "GET",
        "retention.report_viewed",
        "retention_report",
        lambda w, who: Call("/admin/retention/due", resource_id="page-1", patient_id=None),
        patient=False,
    ),
    Case(
        "retention_purge.hold",
        "GET",
        "retention.hold_viewed",
        "patient",
        _old("/admin/retention/patients/{p}/hold"),
    ),
    Case(
        "retention_purge.place_hold",
        "POST",
        "retention.hold_placed",
        "legal_hold",
        _old("/admin/retention/patients/{p}/hold", data={"reason": "Case 7"}),
    ),
    Case(
        "retention_purge.release_hold",
        "POST",
        "retention.hold_released",
        "legal_hold",
        _old("/admin/retention/patients/{p}/hold/release", data={}),
    ),
    Case(
        "retention_purge.review_purge",
        "POST",
        "retention.purge_planned",
        "retention_report",
        _old("/admin/retention/purge/review", named=False, data={"patient_ids": "{p}"}),
        patient=False,
    ),
    Case(
        "retention_purge.purge",
        "POST",
        "retention.purge_confirmed",
        "retention_report",
        _old("/admin/retention/purge", named=False, data={"patient_ids": "{p}", "confirm": "PURGE"}),
        patient=False,
    ),
]


# --- storage cost: the dashboard and the access patterns name the clinic's largest patients -------------

STORAGE = [
    Case(
        "storage.index",
        "GET",
        "storage.dashboard_viewed",
        "storage_dashboard",
        lambda w, who: Call("/admin/storage", resource_id=str(w.tenant.id), patient_id=None),
        patient=False,
    ),
    Case(
        "storage.access",
        "GET",
        "storage.access_patterns_viewed",
        "storage_dashboard",
        lambda w, who: Call("/admin/storage/access", resource_id=str(w.tenant.id), patient_id=None),
        patient=False,
        variant="clinic",
    ),
    Case(
        "storage.access",
        "GET",
        "storage.access_patterns_viewed",
        "patient",
        lambda w, who: Call(
            f"/admin/storage/access?patient_id={w.patient.id}", resource_id=str(w.patient.id)
        ),
        variant="one patient",
    ),
]


CASES: list[Case] = [
    *PATIENTS, *RECORDS, *FILES, *CARE, *PORTAL, *SCHEDULING, *SHARING, *RETENTION, *STORAGE
]  # fmt: skip


# --- what is not patient data ----------------------------------------------------------------------------

NOT_PATIENT_DATA: dict[str, str] = {
    # one's own API tokens and notices (issue 14)
    "api_account.me": "account",
    "api_tokens.index": "account",
    "api_tokens.create": "account",
    "api_tokens.revoke": "account",
    "staff_notifications.index": "notices",
    "staff_notifications.badge": "notices",
    "staff_notifications.mark_read": "notices",
    "staff_notifications.mark_all_read": "notices",
    # storage: the bucket's rules, the clinic's restores and sweeps (object keys and counts, no contents)
    "storage_lifecycle.index": "storage",
    "storage_lifecycle.save": "storage",
    "storage_lifecycle.apply": "storage",
    "storage_restores.restore_list": "storage",
    "storage_restores.sweeps": "storage",
    "storage_restores.sweep": "storage",
    "storage.record_now": "storage",
    "storage.set_thresholds": "storage",
    # the dashboard's figures as JSON: sizes, classes, costs, no patient
    "storage_api.metrics": "storage",
    "storage_api.costs": "storage",
    "storage_api.trends": "storage",
    "storage_api.alert_list": "storage",
    # the app itself
    "static": "static",
    "web.index": "redirect",
    "web.healthz": "health",
    # signing in and one's own account
    "accounts.login": "sign-in",
    "accounts.login_mfa": "sign-in",
    "accounts.logout": "sign-in",
    "accounts.forgot_password": "password",
    "accounts.reset_password": "password",
    "accounts.accept_invitation": "sign-up",
    "registration.register": "sign-up",
    "registration.finish": "sign-up",
    "accounts.security": "account",
    "accounts.change_password": "account",
    "accounts.revoke_session": "account",
    "accounts.sign_out_everywhere": "account",
    "accounts.mfa_setup": "account",
    "accounts.regenerate_recovery_codes": "account",
    "accounts.disable_mfa": "account",
    # the clinic's staff and settings
    "accounts.users": "staff",
    "accounts.invite_user": "staff",
    "accounts.change_user_role": "staff",
    "accounts.deactivate_user": "staff",
    "accounts.activate_user": "staff",
    "accounts.resend_invitation": "staff",
    "accounts.clinic_security": "settings",
    "records.templates": "settings",
    "records.create_template": "settings",
    "records.edit_template": "settings",
    "records.archive_template": "settings",
    "records.activate_template": "settings",
    "records.clinical_settings": "settings",
    "care_settings.index": "settings",
    "care_settings.clinic": "settings",
    "care_settings.save_targets": "settings",
    "care_settings.add_rule": "settings",
    "care_settings.edit_rule": "settings",
    "care_settings.toggle_rule": "settings",
    "care_inbox.topics": "settings",
    "care_inbox.topic_update": "settings",
    "care_inbox.notice": "settings",
    "schedule.settings": "settings",
    "schedule.add_type": "settings",
    "schedule.edit_type": "settings",
    "schedule.toggle_type": "settings",
    "schedule.add_closure": "settings",
    "schedule.remove_closure": "settings",
    "schedule.save_settings": "settings",
    "schedule.hours": "hours",
    "schedule.save_week": "hours",
    "schedule.add_exception": "hours",
    "schedule.remove_exception": "hours",
    "retention.index": "settings",
    "retention.save": "settings",
    "care_report.index": "aggregates",
    # the audit trail itself (its export is audited as audit.export)
    "audit.index": "audit-trail",
    "audit.event": "audit-trail",
    "audit.export": "audit-trail",
    "audit.export_status": "audit-trail",
    "audit.export_download": "audit-trail",
    "audit.load_archived": "audit-trail",
    "audit.load_status": "audit-trail",
    "audit_alerts.acknowledge_alert": "audit-trail",
    # the clinic's export: every patient at once, audited as clinic.export (healthcrm/tenant_export)
    "tenant_export.index": "clinic-export",
    "tenant_export.start": "clinic-export",
    "tenant_export.show": "clinic-export",
    "tenant_export.download": "clinic-export",
    "tenant_export.save_schedule": "clinic-export",
    # pieces of a form, and lookups that hold no patient's data
    "patients.create GET": "empty-form",
    "portal_messages.new GET": "empty-form",
    "records.form_row": "form-row",
    "records.icd10_search": "code-list",
    "sharing.recipient_row": "form-row",
    # jobs, mail, and the plumbing of uploads and downloads (the file's own route audits its bytes)
    "jobs.index": "jobs",
    "jobs.show": "jobs",
    "attachments.zip_progress": "jobs",
    # an export's progress (its bytes are audited when downloaded)
    "portal_export.index": "jobs",
    "portal_export.show": "jobs",
    "patient_export.staff_index": "jobs",
    "patient_export.staff_show": "jobs",
    "provider.export_pdf": "jobs",
    "provider.export_progress": "jobs",
    "mail.outbox": "outbox",
    "mail.show": "outbox",
    "attachments.part_urls": "upload",
    "attachments.upload_status": "upload",
    "attachments.abort_upload": "upload",
    "files.local_download": "storage",
    "files.local_upload": "storage",
    "files.local_part": "storage",
    # the patient's notices about their account (what they point to is audited where it is opened)
    "portal_notifications.index": "notices",
    "portal_notifications.badge": "notices",
    "portal_notifications.mark_read": "notices",
    "portal_notifications.mark_all_read": "notices",
    "portal_notifications.settings": "preferences",
    # a share link's checks before anything is shown (each is on the link's access log and audited)
    "provider.landing": "share-check",
    "provider.start": "share-check",
    "provider.passcode": "share-check",
    "provider.send_code": "share-check",
    "provider.code": "share-check",
}
