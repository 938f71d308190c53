"""The staff side of the portal: tasks made from portal events, the message inbox, queues and rules."""
