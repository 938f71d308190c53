"""The menus: the portal's (for patients) and the care items of the staff menu, in one place each.

An item shows only when its page exists (its endpoint is registered) and, for staff, when the person holds
its permission, so a page added by an area appears in the menu by adding one line here.
"""

from __future__ import annotations

from dataclasses import dataclass

from flask import current_app, request
from flask_login import current_user


@dataclass(frozen=True)
class NavItem:
    endpoint: str
    label: str
    # Portal: on the phone's bottom bar (the rest sit under "More"). Staff: the permission that opens it.
    primary: bool = False
    permission: str | None = None
    # Other endpoints (or blueprint names) under which this item reads as the current page.
    also: tuple[str, ...] = ()

    def is_current(self) -> bool:
        endpoint = request.endpoint or ""
        blueprint = endpoint.partition(".")[0]
        return endpoint == self.endpoint or endpoint in self.also or blueprint in self.also


PORTAL_NAV = (
    NavItem("portal.home", "Home", primary=True),
    NavItem("portal_timeline.index", "Timeline", also=("portal_timeline",)),
    NavItem("portal_records.index", "Records", primary=True, also=("portal_records.show",)),
    NavItem("portal_records.labs", "Results", also=("portal_records.lab",)),
    NavItem("portal_records.medications", "Medications"),
    NavItem("portal_records.health", "Allergies and conditions"),
    NavItem("portal_messages.index", "Messages", primary=True, also=("portal_messages",)),
    NavItem(
        "portal_appointments.index",
        "Appointments",
        primary=True,
        also=("portal_appointments", "portal_waitlist"),
    ),
    NavItem("portal_documents.index", "Documents", also=("portal_documents",)),
    NavItem("portal_selfcare.refills", "Refills", also=("portal_selfcare.refill_new",)),
    NavItem("portal_selfcare.symptoms", "Symptoms"),
    NavItem("portal_selfcare.doses", "Doses"),
    NavItem("portal_selfcare.care_plan", "Care plan"),
    NavItem("sharing.portal_index", "Sharing", also=("sharing.portal_create", "sharing.portal_show")),
    NavItem("portal_profile.index", "Profile", also=("portal_profile",)),
    NavItem("portal_access.index", "Who has seen my record"),
    NavItem("portal_export.index", "Download my record", also=("portal_export",)),
    NavItem("accounts.security", "Account"),
)

CARE_NAV = (
    NavItem("care_tasks.index", "Tasks", permission="care.tasks", also=("care_tasks",)),
    NavItem("care_inbox.index", "Inbox", permission="care.inbox", also=("care_inbox",)),
    NavItem("schedule.index", "Calendar", permission="schedule.calendar", also=("schedule",)),
)

# The queues behind the tasks, linked from the top of the Tasks page (the bar stays one row at 1280 px).
CARE_QUEUES = (
    NavItem("care_selfcare.refills", "Refill requests", permission="care.refills"),
    NavItem("care_changes.index", "Change requests", permission="care.change_requests"),
)

CARE_ADMIN_NAV = (
    NavItem("care_settings.index", "Portal settings", permission="care.settings", also=("care_settings",)),
    NavItem("care_report.index", "Portal report", permission="care.report", also=("care_report",)),
    NavItem("schedule.settings", "Scheduling settings", permission="schedule.settings"),
    # One entry for the storage area: the dashboard links its lifecycle rules, sweeps and restores.
    NavItem(
        "storage.index",
        "Storage",
        permission="storage.view",
        also=(
            "storage",
            "storage_lifecycle",
            "storage_restores.sweeps",
            "storage_restores.sweep",
            "storage_restores.restore_list",
        ),
    ),
)


def _available(items: tuple[NavItem, ...]) -> list[NavItem]:
    views = current_app.view_functions
    return [
        item
        for item in items
        if item.endpoint in views and (item.permission is None or current_user.can(item.permission))
    ]


def portal_nav() -> list[NavItem]:
    return _available(PORTAL_NAV)


def care_nav() -> list[NavItem]:
    return _available(CARE_NAV)


def care_queues() -> list[NavItem]:
    return _available(CARE_QUEUES)


def care_admin_nav() -> list[NavItem]:
    return _available(CARE_ADMIN_NAV)


# The staff bar's notification link with its unread badge (care/notification_views.py), beside the name.
STAFF_NOTIFICATIONS = NavItem("staff_notifications.index", "Notifications")


def staff_notifications() -> NavItem | None:
    """The staff bar's notification link, when the page exists and the person is staff."""
    found = _available((STAFF_NOTIFICATIONS,))
    return found[0] if found and current_user.is_staff else None
