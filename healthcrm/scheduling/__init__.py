"""Scheduling: appointment types, providers' availability, free slots, bookings without double booking,
holds, the waitlist, the staff calendar, and the emails (with .ics files) and reminders about appointments."""
