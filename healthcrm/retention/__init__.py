"""Records past their retention: the report of patients due, legal holds, and the purge an admin confirms."""
