"""Self-service in the portal and its staff side: refill requests, the symptom log, medication adherence
(dose schedules and marks) and care plans (versioned, acknowledged by the patient)."""
