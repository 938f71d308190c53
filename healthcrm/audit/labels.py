"""What each audit action code means, in the clinic's words: the one place the audit log, the record
history and any export read an action's label from.

Every code the app writes has a row here (tests/audit/test_labels.py reads the code base for them); a
code missing from the table still reads as words, never as a raw code, but the test fails.
"""

from __future__ import annotations

import re

from ..accounts.roles import ROLE_LABELS

ACTION_LABELS: dict[str, str] = {
    # signing in and accounts
    "auth.login": "Signed in",
    "auth.login_failed": "Sign-in failed",
    "auth.logout": "Signed out",
    "auth.logout_everywhere": "Signed out on every device",
    "auth.session_revoked": "Ended a session",
    "auth.password_changed": "Changed their password",
    "auth.password_change_failed": "Password change failed",
    "auth.password_reset_requested": "Asked for a password reset",
    "auth.password_reset": "Reset their password",
    "auth.invitation_accepted": "Accepted the invitation",
    "auth.mfa_enabled": "Turned on two-step sign-in",
    "auth.mfa_disabled": "Turned off two-step sign-in",
    "auth.mfa_verified": "Passed two-step sign-in",
    "auth.mfa_failed": "Failed two-step sign-in",
    "auth.mfa_recovery_codes_regenerated": "Made new recovery codes",
    "access.denied": "Was refused access",
    "audit.alert_acknowledged": "Acknowledged an audit log integrity alert",
    "audit.archived": "Moved a month of the audit log into its archive file",
    "audit.archive_deleted": "Deleted an audit archive past its retention",
    "audit.archive_loaded": "Loaded archived audit months for a search",
    "portal.access_view": "Patient read who has seen their record",
    "portal.disclosures_pdf": "Patient downloaded their accounting of disclosures",
    "patient.disclosures_pdf": "Downloaded the patient's accounting of disclosures",
    "patient.export": "Exported the whole record (PDF, FHIR, files)",
    "clinic.export": "Exported all of the clinic's data",
    "tenant_export.schedule_changed": "Changed when the clinic's data is exported by itself",
    "tenant_export.scheduled_start": "Started the scheduled export of all of the clinic's data",
    "retention.settings_changed": "Changed how long the clinic keeps its data",
    "share_log.retention_deleted": "Deleted share access log entries past their retention",
    "retention.report_viewed": "Viewed the records past their retention",
    "retention.hold_viewed": "Viewed a patient's legal hold",
    "retention.hold_placed": "Placed a legal hold on a patient's records",
    "retention.hold_released": "Released a legal hold on a patient's records",
    "retention.purge_planned": "Reviewed a purge of records past their retention",
    "retention.purge_confirmed": "Confirmed a purge of records past their retention",
    "retention.purge": "Purged a patient's records past their retention",
    "clinic.export_download": "Downloaded the clinic's data export",
    "patient.export_download": "Downloaded the exported record",
    "audit.export": "Exported the audit log",
    "clinic.created": "Clinic created",
    "clinic.mfa_requirement_changed": "Changed the clinic's two-step sign-in rule",
    "clinic.clinical_settings_changed": "Changed the clinic's clinical settings (units, score input age)",
    # portal tasks, care stages, notifications (care/)
    "task.list": "Listed care tasks",
    "task.claimed": "Claimed a care task",
    "task.reassigned": "Reassigned a care task",
    "task.waiting": "Set a care task to wait on the patient",
    "task.resumed": "Resumed a care task",
    "task.completed": "Completed a care task",
    "patient.care_stage_moved": "Care stage moved by a clinic rule",
    "care.stage_rule_created": "Added a care stage rule",
    "care.stage_rule_changed": "Changed a care stage rule",
    "care.stage_rule_enabled": "Turned on a care stage rule",
    "care.stage_rule_disabled": "Turned off a care stage rule",
    "care.targets_changed": "Changed the response targets",
    "care.report_viewed": "Viewed the portal report",
    "clinic.portal_details_changed": "Changed the clinic's phone, address or hours",
    "portal.notification_choices_changed": "Changed their notification email choices",
    # staff
    "user.invited": "Invited a colleague",
    "user.invitation_resent": "Sent the invitation again",
    "user.role_changed": "Changed a role",
    "user.activated": "Reactivated an account",
    "user.deactivated": "Deactivated an account",
    # personal API tokens (accounts/api_tokens.py)
    "api_token.created": "Made an API token",
    "api_token.create_refused": "Making an API token refused (wrong password)",
    "api_token.revoked": "Revoked an API token",
    "api_token.used": "Used an API token",
    "api_token.refused": "An API token was refused",
    # patients
    "patient.list": "Listed patients",
    "patient.view": "Viewed a patient",
    "portal.home.view": "Opened their portal home page",
    "portal.timeline.view": "Read their portal timeline",
    "patient.create": "Added a patient",
    "patient.update": "Edited a patient",
    "patient.portal_invited": "Invited the patient to the portal",
    "patient.registration_code_issued": "Issued a portal registration code",
    "patient.registration_code_revoked": "Revoked a portal registration code",
    "patient.registration_started": "Gave a right registration code (email link sent)",
    "patient.registration_failed": "Tried a wrong registration code or date of birth",
    "patient.registered": "Created their portal account with a registration code",
    "profile.view": "Opened their profile in the portal",
    "profile.change_request": "Asked to change their name, date of birth or sex",
    "profile.change_withdraw": "Withdrew a profile change request",
    "profile.change_queue": "Listed the profile change requests",
    "profile.change_approve": "Approved a profile change request",
    "profile.change_reject": "Rejected a profile change request",
    "allergy.create": "Recorded an allergy",
    "allergy.update": "Edited an allergy",
    "immunization.create": "Recorded an immunization",
    # records and labs
    "record.list": "Listed records",
    "record.view": "Viewed",
    "record.create": "Created",
    "record.update": "Edited",
    "record.finalize": "Finalized",
    "record.addendum": "Addendum added",
    "record.delete": "Deleted",
    "template.create": "Created a record template",
    "template.update": "Edited a record template",
    "template.activated": "Activated a record template",
    "template.archived": "Archived a record template",
    "lab.view": "Viewed labs",
    "result.hold": "Held a result from the patient",
    "result.release": "Released a held result to the patient",
    "result.hold_ended": "A held result's hold ended",
    "record.patient_view_changed": "Changed what the patient sees of the record",
    "portal.records_view": "Patient viewed their visits",
    "portal.record_view": "Patient viewed a visit",
    "portal.labs_view": "Patient viewed their results",
    "portal.lab_view": "Patient viewed a result over time",
    "portal.medications_view": "Patient viewed their medications",
    "portal.health_view": "Patient viewed allergies and conditions",
    "lab.create": "Added a lab result",
    "lab.import": "Imported lab results",
    # files
    "attachment.upload_start": "Started a file upload",
    "attachment.upload": "Uploaded a file",
    "attachment.view": "Viewed a file",
    "attachment.show": "Opened a file's page (its name and versions)",
    "attachment.list": "Listed files",
    "attachment.preview": "Viewed a file's preview image",
    "attachment.zip": "Asked for a zip of files",
    "attachment.zip_download": "Downloaded a zip of files",
    "attachment.download": "Downloaded a file",
    "attachment.move": "Moved a file",
    "attachment.delete": "Deleted a file",
    "attachment.restore": "Restored a file version",
    "attachment.rejected": "A file was refused",
    "attachment.scan_clean": "A file passed the virus scan",
    "attachment.quarantine": "A file was quarantined",
    "attachment.checksum_mismatch": "A file failed its integrity check",
    "attachment.show_to_patient": "Made a document visible to the patient",
    "attachment.hide_from_patient": "Hid a document from the patient",
    # sharing: the staff or patient side
    # self-service (healthcrm/selfcare)
    "refill.list": "Read the refill requests",
    "refill.request": "Asked for a refill",
    "refill.queue": "Opened the refill queue",
    "refill.approve": "Approved a refill",
    "refill.deny": "Denied a refill",
    "symptom.list": "Read the symptom log",
    "symptom.create": "Logged a symptom",
    "dose.list": "Read the dose marks",
    "dose.mark": "Marked a dose",
    "prescription.schedule": "Set a prescription's dose times",
    "care_plan.view": "Read the care plan",
    "care_plan.publish": "Saved a care plan version",
    "care_plan.acknowledge": "Acknowledged the care plan",
    "share.list": "Listed share links",
    "share.create": "Shared records",
    "share.preview": "Previewed what a share would show",
    "share.extend": "Extended a share link",
    "share.expire": "A share link expired",
    "share.revoke": "Revoked a share link",
    "share.resend": "Resent a share link",
    "share.passcode": "Changed a share passcode",
    "share.log": "Read a share's access log",
    "share.overview": "Opened the sharing overview",
    # sharing: the outside provider (one per sharing.models EVENT_* kind)
    "share.open": "Provider opened the link",
    "share.passcode_failed": "Provider entered a wrong passcode",
    "share.passcode_ok": "Provider's passcode accepted",
    "share.code_sent": "Emailed the provider a code",
    "share.code_verified": "Provider's email code verified",
    "share.code_failed": "Provider entered a wrong email code",
    "share.view": "Provider viewed shared records",
    "share.file_preview": "Provider viewed a page of a shared file",
    "share.download": "Provider downloaded a file",
    "share.export": "Provider exported the records",
    "share.paused": "Link paused after wrong passcodes",
    # messages between patients and the care team (portal/messages)
    "message.thread_list": "Listed message threads",
    "message.thread_view": "Read a message thread",
    "message.thread_create": "Started a message thread",
    "message.send": "Sent a message",
    "message.reply": "Replied to a message",
    "message.thread_reassign": "Reassigned a message thread",
    "message.thread_close": "Closed a message thread",
    "message.inbox_list": "Listed the message inbox",
    "message.topic_created": "Added a message topic",
    "message.topic_changed": "Changed a message topic",
    "message.settings_changed": "Changed the notice patients read before sending a message",
    "patient.messaging_changed": "Turned the patient's messages on or off",
    # appointments (healthcrm/scheduling)
    "appointment.list": "Viewed the appointment calendar",
    "appointment.read": "Viewed an appointment",
    "appointment.view": "Viewed an appointment in the portal",
    "appointment.slots": "Looked at free appointment times",
    "appointment.hold_view": "Viewed a held appointment time",
    "appointment.calendar": "Downloaded an appointment's calendar file",
    "appointment.hold": "Held a time for an appointment",
    "appointment.book": "Booked an appointment",
    "appointment.release": "Gave back a held time",
    "appointment.reschedule": "Moved an appointment",
    "appointment.cancel": "Cancelled an appointment",
    "appointment.overbook": "Overbooked an appointment (with a reason)",
    "appointment.check_in": "Checked a patient in",
    "appointment.complete": "Completed an appointment",
    "appointment.no_show": "Marked an appointment as a no-show",
    "appointment.visit_record": "Started a visit record from an appointment",
    "waitlist.join": "Joined the waitlist",
    "waitlist.withdraw": "Left the waitlist",
    "waitlist.view": "Viewed their waitlist",
    "waitlist.offer": "Offered a freed time to a waiting patient",
    "waitlist.offer_view": "Viewed a waitlist offer",
    "waitlist.accept": "Took a waitlist offer",
    "waitlist.decline": "Declined a waitlist offer",
    "waitlist.lapse": "A waitlist offer ran out",
    "waitlist.expire": "A waitlist request ended (its last day passed)",
    "scheduling.settings": "Changed the scheduling settings (types, closures, reminders)",
    "availability.weekly_hours": "Changed a provider's weekly hours",
    "availability.exception_add": "Added time off or extra hours",
    "availability.exception_remove": "Removed time off or extra hours",
    # archived files and the storage sweeper (healthcrm/storage_cost)
    "file.restore_requested": "Asked for an archived file to be retrieved",
    "file.restore_ready": "An archived file was retrieved and opens again",
    "storage.restores_viewed": "Viewed the restores of archived files",
    "storage.dashboard_viewed": "Viewed the storage cost dashboard",
    "storage.access_patterns_viewed": "Viewed how often files are opened",
    "storage.threshold_changed": "Changed a storage alert's limit",
    "storage.alert_raised": "A storage limit was crossed",
    "storage.alert_cleared": "A storage figure went back below its limit",
    "storage.sweep_viewed": "Viewed a storage sweep report",
    # the demo
    "demo.seeded": "Demo clinic created",
    "demo.records_seeded": "Demo records created",
    "demo.passwords_set": "Demo passwords set",
    # storage lifecycle (storage_cost/)
    "storage.lifecycle_settings_changed": "Changed when the clinic's files move to archive storage",
    "storage.lifecycle_applied": "Applied the storage lifecycle rules to the bucket",
}

OUTCOME_LABELS = {"success": "Done", "failure": "Failed", "denied": "Refused"}

# Who acted when no user did: the actor_role values that are not people's roles.
ACTOR_ROLE_LABELS = {**ROLE_LABELS, "provider": "Outside provider", "system": "System", None: "Anonymous"}


def action_label(code: str) -> str:
    """The plain label of an action code; an unknown code reads as words ("attachment.foo_bar" →
    "Attachment: foo bar") rather than as a code."""
    label = ACTION_LABELS.get(code)
    if label is not None:
        return label
    area, _, rest = code.partition(".")
    return f"{area.capitalize()}: {rest.replace('_', ' ')}" if rest else code.replace("_", " ").capitalize()


def own_action_label(code: str) -> str:
    """The label as the patient reads it about what they did themselves: "Patient viewed their visits"
    reads "Viewed your visits"."""
    label = action_label(code).removeprefix("Patient ")
    return re.sub(r"\btheir\b", "your", label[:1].upper() + label[1:])


def outcome_label(outcome: str) -> str:
    return OUTCOME_LABELS.get(outcome, outcome.capitalize())


def role_label(role: str | None) -> str:
    return ACTOR_ROLE_LABELS.get(role) or (role or "").replace("_", " ").capitalize()
