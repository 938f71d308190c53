"""What each audit action code means, in the clinic's words: the one place the audit log, the record
history and any export read an action's label from.

Every code the app writes has a row here (tests/audit/test_labels.py reads the code base for them); a
code missing from the table still reads as words, never as a raw code, but the test fails.
"""

from __future__ import annotations

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
    "clinic.created": "Clinic created",
    "clinic.mfa_requirement_changed": "Changed the clinic's two-step sign-in rule",
    "clinic.clinical_settings_changed": "Changed the clinic's clinical settings (units, score input age)",
    # staff
    "user.invited": "Invited a colleague",
    "user.invitation_resent": "Sent the invitation again",
    "user.role_changed": "Changed a role",
    "user.activated": "Reactivated an account",
    "user.deactivated": "Deactivated an account",
    # patients
    "patient.list": "Listed patients",
    "patient.view": "Viewed a patient",
    "patient.create": "Added a patient",
    "patient.update": "Edited a patient",
    "patient.portal_invited": "Invited the patient to the portal",
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
    "lab.create": "Added a lab result",
    "lab.import": "Imported lab results",
    # files
    "attachment.upload_start": "Started a file upload",
    "attachment.upload": "Uploaded a file",
    "attachment.view": "Viewed a file",
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
    "share.list": "Listed share links",
    "share.create": "Shared records",
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
    "share.download": "Provider downloaded a file",
    "share.export": "Provider exported the records",
    "share.paused": "Link paused after wrong passcodes",
    # the demo
    "demo.seeded": "Demo clinic created",
    "demo.records_seeded": "Demo records created",
    "demo.passwords_set": "Demo passwords set",
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


def outcome_label(outcome: str) -> str:
    return OUTCOME_LABELS.get(outcome, outcome.capitalize())


def role_label(role: str | None) -> str:
    return ACTOR_ROLE_LABELS.get(role) or (role or "").replace("_", " ").capitalize()
