"""The clinic the audit coverage matrix (tests/audit/test_coverage_matrix.py) runs in: a member of staff of
every role, a patient with a history (tests/sharing/factories.py) and a portal account, and builders that make
one more object of each kind (a draft, a file with a version, an appointment, a thread, a share link, …) for
the case at hand, so that a case that changes or deletes something never spends another case's object.

Staff and the patient are signed in by opening a session row directly (the cookie a sign-in would set): the
matrix signs in hundreds of times and the password check is tested elsewhere. Outside providers hold a share
link and pass its checks as their browser would (tests/sharing/test_provider.py).
"""

from __future__ import annotations

import hashlib
import io
import itertools
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, time, timedelta

from flask import Flask, current_app
from flask.testing import FlaskClient
from sqlalchemy import select

from healthcrm.accounts.models import PATIENT, STAFF_ROLES, Tenant, User
from healthcrm.accounts.sessions import open_session
from healthcrm.audit.services import Actor
from healthcrm.care.services import open_task
from healthcrm.clock import utcnow
from healthcrm.extensions import db
from healthcrm.files import patient_files, processing
from healthcrm.files.models import SCAN_NOT_SCANNED, Attachment, AttachmentVersion
from healthcrm.files.storage import get_storage, make_key
from healthcrm.jobs.models import FINISHED, Job
from healthcrm.patients.models import Patient
from healthcrm.portal import events
from healthcrm.portal.messages import services as messages
from healthcrm.portal.messages.models import MessageAttachment, Thread
from healthcrm.portal.models import Notification
from healthcrm.portal.profile import services as profile
from healthcrm.records.models import DRAFT, FINALIZED, Diagnosis, LabResult, MedicalRecord, Prescription
from healthcrm.scheduling.models import (
    BOOKED,
    HELD,
    HOLD_BOOKING,
    HOLD_OFFER,
    IN_PERSON,
    OFFERED,
    Appointment,
    AppointmentType,
    WaitlistEntry,
    WaitlistOffer,
    WeeklyHours,
)
from healthcrm.selfcare import care_plans, refills
from healthcrm.sharing import services as sharing
from healthcrm.sharing.models import ShareLink, ShareToken, ShareVisit
from tests.factories import make_portal_user, make_tenant, make_user
from tests.files import samples
from tests.retention.factories import old_patient
from tests.sharing.factories import add_lab, make_share, make_shared_patient
from tests.storage_cost.restore_fixtures import stored_file

ZONE = "Europe/Berlin"
# The matrix's "now": a Monday, 08:00 in Berlin (winter time), so that the clinic has free times today and
# the tests pass on any date (the fixture travels here, the clock ticking).
MONDAY_8AM = datetime(2031, 1, 6, 7, 0, tzinfo=UTC)
PROVIDER = "provider"
FIRST_VERSIONS = {
    "png": (samples.png(), "png", "image/png"),
    "pdf": (samples.pdf(), "pdf", "application/pdf"),
    "dicom": (samples.dicom(), "dicom", "application/dicom"),
}  # the role of an outside provider on a share link (what its audit events carry)
_seq = itertools.count(1)


@dataclass
class Who:
    """The person a request is made as: a signed-in user, or an outside provider on a share link."""

    role: str
    client: FlaskClient
    user: User | None = None
    share: ShareLink | None = None
    token: str = ""

    @property
    def actor(self) -> Actor:
        assert self.user is not None
        return Actor(tenant_id=self.user.tenant_id, user_id=self.user.id, role=self.user.role)


@dataclass
class World:
    """One clinic with everyone in it, and another clinic with a patient of its own (for the 404s)."""

    app: Flask
    tenant: Tenant
    staff: dict[str, User]
    patient: Patient
    portal: User
    appointment_type: AppointmentType
    _clients: dict[int, FlaskClient] = field(default_factory=dict)
    _slots_taken: int = 0

    # --- people -------------------------------------------------------------------------------------------

    @property
    def doctor(self) -> User:
        return self.staff["doctor"]

    def user(self, role: str) -> User:
        return self.portal if role == PATIENT else self.staff[role]

    def actor(self, role: str = "doctor") -> Actor:
        user = self.user(role)
        return Actor(tenant_id=user.tenant_id, user_id=user.id, role=user.role)

    def signed_in(self, user: User) -> FlaskClient:
        """A browser signed in as `user` (one per user and world)."""
        if user.id not in self._clients:
            _row, raw = open_session(user, "127.0.0.1", "coverage-matrix")
            db.session.commit()
            client = self.app.test_client()
            client.set_cookie(self.app.config["AUTH_COOKIE_NAME"], raw)
            self._clients[user.id] = client
        return self._clients[user.id]

    def who(self, role: str) -> Who:
        if role == PROVIDER:
            return self.provider()
        user = self.user(role)
        return Who(role=role, client=self.signed_in(user), user=user)

    def provider(self, **share_fields) -> Who:
        """An outside provider's browser, admitted to a new share of everything (downloads allowed)."""
        share_fields.setdefault("allow_download", True)
        share = make_share(self.patient, **share_fields)
        token = self.token_of(share)
        client = self.app.test_client()
        started = client.post(f"/s/{token}", data={})
        assert started.status_code == 303, started.status_code
        admitted = client.get(f"/s/{token}/check")
        assert admitted.status_code in (302, 303), admitted.status_code
        return Who(role=PROVIDER, client=client, share=share, token=token)

    def unadmitted_provider(self, **share_fields) -> Who:
        """A provider's browser that pressed "Continue" on a new link and has not been let in yet."""
        share = make_share(self.patient, **share_fields)
        token = self.token_of(share)
        client = self.app.test_client()
        assert client.post(f"/s/{token}", data={}).status_code == 303
        return Who(role=PROVIDER, client=client, share=share, token=token)

    @staticmethod
    def token_of(share: ShareLink) -> str:
        token = sharing.new_token()
        db.session.add(
            ShareToken(tenant_id=share.tenant_id, share_id=share.id, token_hash=sharing.token_hash(token))
        )
        db.session.commit()
        return token

    # --- records and labs ---------------------------------------------------------------------------------

    def records(self, status: str = FINALIZED, patient: Patient | None = None) -> list[MedicalRecord]:
        patient = patient or self.patient
        return list(
            db.session.scalars(
                select(MedicalRecord)
                .where(
                    MedicalRecord.tenant_id == patient.tenant_id,
                    MedicalRecord.patient_id == patient.id,
                    MedicalRecord.status == status,
                )
                .order_by(MedicalRecord.visit_at)
            )
        )

    @property
    def record(self) -> MedicalRecord:
        """The patient's first finalized visit."""
        return self.records()[0]

    def draft(self, patient: Patient | None = None) -> MedicalRecord:
        """A new draft visit of the patient's."""
        patient = patient or self.patient
        record = MedicalRecord(
            tenant_id=patient.tenant_id, patient_id=patient.id, doctor_id=self.doctor.id,
            author_id=self.doctor.id, visit_at=datetime(2030, 12, 1, 9, next(_seq) % 60),
            chief_complaint="Draft for the matrix", status=DRAFT,
        )  # fmt: skip
        db.session.add(record)
        db.session.flush()
        # A diagnosis, so that the draft can be finalized.
        db.session.add(
            Diagnosis(
                tenant_id=patient.tenant_id,
                record_id=record.id,
                code="K76.0",
                name="Fatty liver",
                is_primary=True,
            )
        )
        db.session.commit()
        return record

    def finalized(self) -> MedicalRecord:
        """A new finalized visit (its addenda and patient view are the case's to change)."""
        record = self.draft()
        record.status, record.finalized_at, record.finalized_by_id = FINALIZED, utcnow(), self.doctor.id
        db.session.commit()
        return record

    def lab(self) -> LabResult:
        """A new result of the patient's, released."""
        n = next(_seq)
        result = add_lab(
            self.patient, f"9{n:04d}-1", f"Matrix test {n}", 5.0, "mg/dL", datetime(2030, 12, 1), 1, 10
        )
        db.session.commit()
        return result

    @property
    def prescription(self) -> Prescription:
        """The patient's current prescription (Spironolactone, on the second visit)."""
        return db.session.scalar(
            select(Prescription)
            .join(MedicalRecord, MedicalRecord.id == Prescription.record_id)
            .where(Prescription.tenant_id == self.tenant.id, MedicalRecord.patient_id == self.patient.id)
        )

    # --- files --------------------------------------------------------------------------------------------

    def attachment(
        self, record: MedicalRecord | None = None, *, versions: int = 1, first: str = "png"
    ) -> Attachment:
        """A checked file on the record (by default the first finalized visit), with its previews: its first
        version a PNG (or a PDF, or a DICOM study: `first`), JPEGs after it."""
        record = record or self.record
        name = f"scan-{next(_seq)}.{'dcm' if first == 'dicom' else first}"
        storage = get_storage(current_app)
        attachment = Attachment(
            tenant_id=record.tenant_id, record_id=record.id, patient_id=record.patient_id, filename=name,
            name_key=name.casefold(),
        )  # fmt: skip
        db.session.add(attachment)
        for number in range(1, versions + 1):
            data, kind, content_type = (
                FIRST_VERSIONS[first]
                if number == 1
                else (samples.jpeg((40 + number, 30)), "jpeg", "image/jpeg")
            )
            key = make_key(record.tenant_id, record.id, f"{number}-{name}")
            stored = storage.put_stream(key, io.BytesIO(data), content_type)
            digest = hashlib.sha256(data).hexdigest()
            version = AttachmentVersion(
                tenant_id=record.tenant_id, attachment=attachment, number=number, storage_key=key,
                original_name=name, kind=kind, content_type=content_type, size=len(data),
                stored_size=len(data), sha256=digest, stored_sha256=digest, stored_etag=stored.etag,
                scan_status=SCAN_NOT_SCANNED,
            )  # fmt: skip
            db.session.add(version)
            db.session.flush()
            attachment.current_version_id = version.id
        db.session.commit()
        processing.make_previews(attachment.current_version_id, attachment.tenant_id)
        db.session.expire_all()
        return db.session.get(Attachment, attachment.id)

    def versions(self, attachment: Attachment) -> list[AttachmentVersion]:
        return sorted(attachment.versions, key=lambda v: v.number)

    def document(self, *, by: str = PATIENT, visible: bool = True) -> Attachment:
        """A patient document (no record): uploaded by the patient, or by staff and shown to the patient."""
        actor = self.actor(by)
        found = patient_files.store_patient_file(
            actor, self.patient.id, f"letter-{next(_seq)}.pdf", io.BytesIO(samples.pdf()),
            source=patient_files.PORTAL if by == PATIENT else patient_files.STAFF,
        )  # fmt: skip
        if visible and by != PATIENT:
            patient_files.set_visible_to_patient(actor, self.patient.id, found.id, True)
        return db.session.get(Attachment, found.id)

    def archived(self, *, document: bool = False) -> AttachmentVersion:
        """A file of the record (or, with `document`, a patient document shown to the patient) stored in
        GLACIER: it opens only after a restore."""
        return stored_file(
            tenant_id=self.tenant.id,
            patient_id=self.patient.id,
            record_id=None if document else self.record.id,
            name=f"archived-{next(_seq)}.pdf",
        )

    def zip_job(self, user: User, record: MedicalRecord, attachment: Attachment) -> Job:
        """A finished zip of one file of the record, made for `user`."""
        key = f"{self.tenant.id}/zips/{uuid.uuid4().hex}.zip"
        get_storage(current_app).put_stream(key, io.BytesIO(b"PK\x05\x06" + bytes(18)), "application/zip")
        return self._job(
            user, "files.zip", [user.id, record.id, str(attachment.id)], {"key": key, "name": "files.zip"}
        )

    def _job(self, user: User, kind: str, args: list, result: dict) -> Job:
        job = Job(
            id=str(uuid.uuid4()), tenant_id=self.tenant.id, user_id=user.id, kind=kind, label=kind, args=args,
            status=FINISHED, result=result, finished_at=utcnow(),
        )  # fmt: skip
        db.session.add(job)
        db.session.commit()
        return job

    def export_job(self, user: User) -> Job:
        """A finished export of the patient's record, started by `user` (the patient or staff)."""
        key = f"{self.tenant.id}/patient-exports/{uuid.uuid4().hex}.zip"
        get_storage(current_app).put_stream(key, io.BytesIO(b"PK\x05\x06" + bytes(18)), "application/zip")
        for_patient = 1 if user.role == PATIENT else 0
        return self._job(
            user, "patient_export.build", [self.patient.id, for_patient],
            {"made": True, "key": key, "patient_id": self.patient.id, "files": 0, "resources": 1},
        )  # fmt: skip

    def provider_export_job(self, who: Who) -> Job:
        """A finished watermarked PDF export of the provider's share (as its export job leaves it)."""
        key = f"{self.tenant.id}/share-exports/{uuid.uuid4().hex}.pdf"
        get_storage(current_app).put_stream(key, io.BytesIO(samples.pdf()), "application/pdf")
        job = Job(
            id=str(uuid.uuid4()), tenant_id=self.tenant.id, user_id=None, kind="sharing.export_pdf",
            label="Shared records (PDF)", args=[who.share.id, self._visit_id(who)], status=FINISHED,
            result={"key": key, "name": "shared-records.pdf"}, finished_at=utcnow(),
        )  # fmt: skip
        db.session.add(job)
        db.session.commit()
        return job

    @staticmethod
    def _visit_id(who: Who) -> int:
        return db.session.scalar(
            select(ShareVisit.id).where(
                ShareVisit.tenant_id == who.share.tenant_id, ShareVisit.share_id == who.share.id
            )
        )

    # --- the portal side ----------------------------------------------------------------------------------

    def thread(self, *, with_file: bool = False) -> Thread:
        """A new thread from the patient to their coach (with a PDF on its first message)."""
        uploads = [messages.Upload(f"photo-{next(_seq)}.pdf", io.BytesIO(samples.pdf()))] if with_file else []
        thread = messages.start_thread(
            self.actor(PATIENT), self.patient.id, subject=f"Question {next(_seq)}", body="Is this normal?",
            uploads=uploads,
        )  # fmt: skip
        return db.session.get(Thread, thread.id)

    def thread_attachment_id(self, thread: Thread) -> int:
        return db.session.scalar(
            select(MessageAttachment.attachment_id)
            .join(MessageAttachment.attachment)
            .where(MessageAttachment.tenant_id == self.tenant.id, Attachment.patient_id == self.patient.id)
            .order_by(MessageAttachment.attachment_id.desc())
        )

    def task(self):
        """An open pool task about the patient (as a portal message makes one)."""
        event = events.raise_event(
            self.actor(PATIENT), "message.sent", patient_id=self.patient.id, subject=("thread", next(_seq))
        )
        events.discard_pending()
        task = open_task(
            event, "message", "Answer the patient's message", link="/care/inbox",
            pool_roles=sorted(STAFF_ROLES), pool_name="Everyone",
        )  # fmt: skip
        db.session.commit()
        return task

    def refill(self):
        request = refills.request_refill(
            self.actor(PATIENT), self.patient.id, self.prescription.id, "Running low"
        )
        return request

    def change_request(self):
        patient = self.patient
        return profile.request_change(
            self.actor(PATIENT),
            patient.id,
            {
                "first_name": patient.first_name,
                "last_name": f"Changed{next(_seq)}",
                "date_of_birth": patient.date_of_birth.isoformat(),
                "sex": patient.sex,
            },
            "Married",
        )

    def contact(self):
        return profile.add_emergency_contact(
            self.actor(PATIENT),
            self.patient.id,
            {"name": f"Sam {next(_seq)}", "relationship": "Brother", "phone": "555 0101"},
        )

    def care_plan(self):
        """The next version of the patient's care plan, written by the doctor."""
        current = care_plans.current_version(self.tenant.id, self.patient.id)
        return care_plans.publish_version(
            self.actor("doctor"), self.patient.id, goals=f"Walk daily ({next(_seq)})",
            instructions="Low salt.", based_on=current.number if current else 0,
        )  # fmt: skip

    def notification(self) -> Notification:
        notice = Notification(tenant_id=self.tenant.id, user_id=self.portal.id, text="A result is ready")
        db.session.add(notice)
        db.session.commit()
        return notice

    # --- appointments -------------------------------------------------------------------------------------

    def appointment(self, status: str = BOOKED, *, days: int = 3, purpose: str = HOLD_OFFER) -> Appointment:
        """A booking (or hold) of the patient's with the doctor, `days` ahead at an hour of its own."""
        n = next(_seq)
        starts = utcnow().replace(minute=0, second=0, microsecond=0) + timedelta(
            days=days, minutes=30 * (n % 400)
        )
        row = Appointment(
            tenant_id=self.tenant.id, patient_id=self.patient.id, provider_id=self.doctor.id,
            type_id=self.appointment_type.id, starts_at=starts, ends_at=starts + timedelta(minutes=20),
            blocked_from=starts, blocked_until=starts + timedelta(minutes=20), status=status,
            hold_expires_at=utcnow() + timedelta(hours=1) if status == HELD else None,
            hold_purpose=purpose if status == HELD else None,
        )  # fmt: skip
        db.session.add(row)
        db.session.commit()
        return row

    def hold(self) -> Appointment:
        return self.appointment(HELD, purpose=HOLD_BOOKING)

    def waitlist_entry(self) -> WaitlistEntry:
        """A waitlist entry of the patient's with an open offer of a held time."""
        kind = AppointmentType(
            tenant_id=self.tenant.id, name=f"Waitlisted {next(_seq)}", duration_minutes=20, mode=IN_PERSON,
            patient_bookable=True,
        )  # fmt: skip
        db.session.add(kind)
        db.session.flush()
        hold = self.appointment(HELD)
        hold.type_id = kind.id
        entry = WaitlistEntry(
            tenant_id=self.tenant.id, patient_id=self.patient.id, type_id=kind.id, provider_id=self.doctor.id,
            earliest_day=hold.starts_at.date(), latest_day=hold.starts_at.date(), status=OFFERED,
        )  # fmt: skip
        db.session.add(entry)
        db.session.flush()
        db.session.add(
            WaitlistOffer(
                tenant_id=self.tenant.id, entry_id=entry.id, hold_id=hold.id, provider_id=hold.provider_id,
                type_id=kind.id, starts_at=hold.starts_at, expires_at=hold.hold_expires_at,
            )
        )  # fmt: skip
        db.session.commit()
        return entry

    def offer(self) -> WaitlistOffer:
        entry = self.waitlist_entry()
        return db.session.scalar(
            select(WaitlistOffer).where(
                WaitlistOffer.tenant_id == self.tenant.id, WaitlistOffer.entry_id == entry.id
            )
        )

    def free_slot(self) -> datetime:
        """A start (naive UTC) the doctor is free at, from Tuesday 09:00 in Berlin on, a new one each call (on
        the 20-minute grid of the doctor's hours, 09:00 to 17:00)."""
        n = self._slots_taken
        self._slots_taken += 1
        day = MONDAY_8AM.replace(tzinfo=None, hour=8) + timedelta(days=1 + n // 20)
        return day + timedelta(minutes=20 * (n % 20))

    # --- sharing ------------------------------------------------------------------------------------------

    def share(self, **fields) -> ShareLink:
        return make_share(self.patient, **fields)

    def old_patient(self) -> Patient:
        """A patient whose records are past retention (a visit in 2001)."""
        return old_patient(self.tenant, self.doctor)


def build_world(app: Flask) -> World:
    tenant = make_tenant("Coverage Clinic", timezone=ZONE)
    staff = {role: make_user(tenant, role) for role in STAFF_ROLES}
    patient = make_shared_patient(tenant, staff["doctor"])
    patient.assigned_coach_id = staff["coach"].id
    kind = AppointmentType(
        tenant_id=tenant.id, name="Check-up", duration_minutes=20, mode=IN_PERSON, buffer_before_minutes=0,
        buffer_after_minutes=0, patient_bookable=True, min_notice_minutes=60, horizon_days=28,
        reschedule_cutoff_minutes=120, cancel_cutoff_minutes=120,
    )  # fmt: skip
    db.session.add(kind)
    for weekday in range(5):
        db.session.add(
            WeeklyHours(
                tenant_id=tenant.id,
                provider_id=staff["doctor"].id,
                weekday=weekday,
                starts=time(9),
                ends=time(17),
            )
        )
    db.session.commit()
    portal = make_portal_user(patient)
    return World(app=app, tenant=tenant, staff=staff, patient=patient, portal=portal, appointment_type=kind)


@dataclass
class Elsewhere:
    """Another clinic's patient and objects, for the "another clinic's id answers 404" checks."""

    tenant: Tenant
    doctor: User
    patient: Patient
    record: MedicalRecord
    attachment: Attachment
    appointment: Appointment
    thread: Thread
    share: ShareLink
    lab: LabResult


def build_elsewhere(app: Flask) -> Elsewhere:
    other = build_world(app)
    thread = other.thread()
    return Elsewhere(
        tenant=other.tenant, doctor=other.doctor, patient=other.patient, record=other.record,
        attachment=other.attachment(), appointment=other.appointment(), thread=thread, share=other.share(),
        lab=other.lab(),
    )  # fmt: skip
