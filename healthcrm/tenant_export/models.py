"""A clinic's export schedule: off, weekly or monthly, at an hour of the clinic's clock."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Boolean, DateTime, Integer, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from ..extensions import db
from ..tenancy import TenantScoped

OFF = "off"
WEEKLY = "weekly"
MONTHLY = "monthly"
FREQUENCIES = (OFF, WEEKLY, MONTHLY)
# The 29th to the 31st are missing in some months: a schedule on them would skip those months.
MONTH_DAY_MAX = 28
# A night hour after both the American (02:00) and the European (02:00/03:00) clock changes.
HOUR_DEFAULT = 4


class ExportSchedule(TenantScoped, db.Model):
    """When the clinic's export runs by itself; no row means off.

    `next_run_at` is the next slot (naive UTC, worked out in the clinic's zone; None when off). The sweep
    takes a due slot by moving it on with a guarded UPDATE, and names the export's job in the same
    transaction (`last_job_id`), so each slot starts one export whatever runs at once.
    """

    __tablename__ = "clinic_export_schedules"
    __table_args__ = (UniqueConstraint("tenant_id", name="uq_clinic_export_schedules_tenant"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    frequency: Mapped[str] = mapped_column(String(10), default=OFF)
    weekday: Mapped[int] = mapped_column(Integer, default=0)  # 0 is Monday, as date.weekday()
    month_day: Mapped[int] = mapped_column(Integer, default=1)
    hour: Mapped[int] = mapped_column(Integer, default=HOUR_DEFAULT)  # on the clinic's clock
    next_run_at: Mapped[datetime | None] = mapped_column(DateTime, index=True)
    # The last slot taken and the export started for it: a plain jobs id, not a foreign key, so the
    # schedule never holds a job row in place.
    last_run_at: Mapped[datetime | None] = mapped_column(DateTime)
    last_job_id: Mapped[str | None] = mapped_column(String(36))
    # The admins were told that the last job failed (once: a guarded UPDATE sets it).
    failure_reported: Mapped[bool] = mapped_column(Boolean, default=False)
    updated_at: Mapped[datetime | None] = mapped_column(DateTime)
    updated_by_user_id: Mapped[int | None] = mapped_column(Integer)

    @property
    def describe(self) -> str:
        """The schedule in words: "weekly, on Mondays at 04:00" (the hour on the clinic's clock)."""
        at = f"{self.hour:02d}:00"
        if self.frequency == WEEKLY:
            return f"weekly, on {WEEKDAYS[self.weekday]}s at {at}"
        if self.frequency == MONTHLY:
            return f"monthly, on the {ordinal(self.month_day)} at {at}"
        return "off"


WEEKDAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")


def ordinal(day: int) -> str:
    """1st, 2nd, 3rd, 4th, …, 11th, 12th, 13th, …, 21st, 22nd (days of a month)."""
    suffixes = {1: "st", 2: "nd", 3: "rd"}  # codespell:ignore nd
    suffix = "th" if 11 <= day % 100 <= 13 else suffixes.get(day % 10, "th")
    return f"{day}{suffix}"
