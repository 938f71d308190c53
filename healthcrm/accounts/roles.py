"""The roles a person can have in a clinic. What each role may do is in `healthcrm.permissions`."""

ADMIN = "admin"
DOCTOR = "doctor"
NURSE = "nurse"
COACH = "coach"
FRONT_DESK = "front_desk"
PATIENT = "patient"
STAFF_ROLES = (ADMIN, DOCTOR, NURSE, COACH, FRONT_DESK)
ALL_ROLES = (*STAFF_ROLES, PATIENT)
ROLE_LABELS = {
    ADMIN: "Administrator",
    DOCTOR: "Doctor",
    NURSE: "Nurse",
    COACH: "Health coach",
    FRONT_DESK: "Front desk",
    PATIENT: "Patient",
}
