"""Messages between a patient and the care team: threads routed to the patient's coach or to a topic's pool
of roles, messages that never change once sent, read state per reader, attachments through the file
machinery. The patient's pages are `views.py` (blueprint `portal_messages`); the staff inbox is
`healthcrm/care/inbox_views.py` (blueprint `care_inbox`); both call `services.py`.
"""
