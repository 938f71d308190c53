"""The patient's profile in the portal: details they change themselves, and identity change requests staff
decide."""
