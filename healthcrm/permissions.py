"""Who may do what: one table of named permissions and the roles that hold them.

Everything that decides by role asks here: view decorators (`healthcrm.access.requires`), services
(`require(actor, "record.finalize")`, raising `errors.NotAllowed`) and templates
(`current_user.can("record.finalize")`). A permission is named after what it lets a person do, in the
clinic's words; a new rule is a new row here, never a role tuple in a view or a template.

Which *rows* a permitted person reaches is decided elsewhere: the tenant-scoped queries (another clinic's
id answers 404), and for patients the services' "only your own" checks.
"""

from __future__ import annotations

from flask_login import AnonymousUserMixin

from .accounts.roles import ADMIN, ALL_ROLES, COACH, DOCTOR, FRONT_DESK, NURSE, PATIENT, STAFF_ROLES
from .errors import NotAllowed

# Front desk sees no clinical content; coaches read it; nurses write drafts; doctors and admins also sign
# them (finalize, addenda). Demographics are kept by everyone at the desk or in the room, not by coaches.
CLINICAL_READERS = frozenset({ADMIN, DOCTOR, NURSE, COACH})
CLINICAL_WRITERS = frozenset({ADMIN, DOCTOR, NURSE})
SIGNERS = frozenset({ADMIN, DOCTOR})

PERMISSIONS: dict[str, frozenset[str]] = {
    # patients
    "patient.read": frozenset(STAFF_ROLES),  # the patient list and profiles
    "patient.edit": frozenset({ADMIN, DOCTOR, NURSE, FRONT_DESK}),  # demographics, portal invitations
    # clinical content: records, labs, allergies, immunizations, scores, files
    "clinical.read": CLINICAL_READERS,
    "record.read": CLINICAL_READERS,
    "record.write": CLINICAL_WRITERS,  # drafts: create, edit, delete; allergies and immunizations
    "record.finalize": SIGNERS,
    "record.addendum": SIGNERS,
    "record_template.manage": frozenset({ADMIN}),
    "lab.read": CLINICAL_READERS,
    "lab.write": CLINICAL_WRITERS,  # add rows, import CSV files
    "attachment.read": CLINICAL_READERS,
    "attachment.write": CLINICAL_WRITERS,  # upload, replace, restore, move, delete
    # sharing with outside providers
    "share.manage_own": frozenset({PATIENT}),  # a patient's own links
    "share.manage_for_patient": CLINICAL_READERS,  # staff, on a patient's behalf
    "share.overview": frozenset({ADMIN}),
    # the clinic
    "audit.read": frozenset({ADMIN}),
    "audit.retention": frozenset({ADMIN}),  # how long the audit log, share log and records are kept
    "patient.export": frozenset({ADMIN, DOCTOR, NURSE}),  # the whole record as PDF + FHIR + files
    "users.manage": frozenset({ADMIN}),
    "clinic.export": frozenset({ADMIN}),  # all of the clinic's data as one archive
    "outbox.read": frozenset({ADMIN}),
    "jobs.overview": frozenset({ADMIN}),  # the Jobs page in the menu (everyone still reaches their own jobs)
    "portal.use": frozenset({PATIENT}),
    # Personal API tokens (accounts/api_tokens.py): staff only. A token is never more than its holder's own
    # session (the same role permissions, and only on endpoints that opt in), so the role set is the people
    # who work in the clinic's desktop app; patients use the portal in a browser and have no API.
    "account.api_tokens": frozenset(STAFF_ROLES),
    # the staff side of the portal (healthcrm/care)
    "care.tasks": frozenset(STAFF_ROLES),  # the task list: claim, reassign, complete
    "care.inbox": frozenset(
        STAFF_ROLES
    ),  # patients' message threads (routed to the patient's coach or a pool)
    "care.refills": frozenset({ADMIN, DOCTOR, NURSE}),  # approve or deny refill requests
    "care.care_plans": frozenset({ADMIN, DOCTOR, NURSE, COACH}),  # write care plans
    "care.change_requests": frozenset({ADMIN, DOCTOR, NURSE, FRONT_DESK}),  # approve identity changes
    "care.registration_codes": frozenset({ADMIN, DOCTOR, NURSE, FRONT_DESK}),  # give patients a code
    "result.hold": SIGNERS,  # hold one result back from the patient, with a reason and an end date
    "care.settings": frozenset({ADMIN}),  # care-stage rules, topics, response targets, clinic hours
    "care.report": frozenset({ADMIN}),  # the portal report
    # appointments (healthcrm/scheduling)
    "schedule.calendar": frozenset(STAFF_ROLES),  # the day and week views
    "schedule.book": frozenset({ADMIN, DOCTOR, NURSE, FRONT_DESK}),  # book, move, cancel for any patient
    "schedule.overbook": frozenset({ADMIN, DOCTOR, FRONT_DESK}),  # book over another booking, with a reason
    "schedule.check_in": frozenset({ADMIN, DOCTOR, NURSE, FRONT_DESK}),  # check in, complete, no-show
    "schedule.settings": frozenset({ADMIN}),  # appointment types, everyone's hours, closures, reminders
    "schedule.own_hours": frozenset({ADMIN, DOCTOR, NURSE, COACH}),  # a provider's own hours and time off
    # storage cost and lifecycle (healthcrm/storage_cost)
    "storage.view": frozenset({ADMIN}),  # the dashboard, its API, restores and sweeps
    "storage.manage": frozenset({ADMIN}),  # lifecycle settings and Apply, alert thresholds
}


class UnknownPermission(KeyError):
    """A permission name that is not in the table: a typo, which must never read as "no"."""


def roles_for(permission: str) -> frozenset[str]:
    """The roles that hold `permission`."""
    try:
        return PERMISSIONS[permission]
    except KeyError:
        raise UnknownPermission(permission) from None


def _role_of(who) -> str | None:
    if who is None or isinstance(who, str):
        return who
    return getattr(who, "role", None)


def can(who, permission: str) -> bool:
    """Whether `who` (a role name, a User, an audit Actor, or None for nobody) holds `permission`."""
    allowed = roles_for(permission)
    role = _role_of(who)
    return role is not None and role in allowed


def require(who, permission: str) -> None:
    """Raise NotAllowed unless `who` holds `permission` (services call this before anything else)."""
    if not can(who, permission):
        raise NotAllowed(permission, _role_of(who))


def permissions_of(role: str) -> frozenset[str]:
    """Every permission `role` holds (for the users page and tests)."""
    if role not in ALL_ROLES:
        raise ValueError(f"unknown role {role!r}")
    return frozenset(name for name, roles in PERMISSIONS.items() if role in roles)


class AnonymousVisitor(AnonymousUserMixin):
    """Flask-Login's "nobody signed in", answering `can` like a user does (always no)."""

    role = None

    def can(self, permission: str) -> bool:
        return can(None, permission)


# Every role in the table is a real role: a misspelt one would silently give nobody the permission.
_unknown = {role for roles in PERMISSIONS.values() for role in roles} - set(ALL_ROLES)
if _unknown:
    raise ValueError(f"unknown roles in PERMISSIONS: {_unknown}")
