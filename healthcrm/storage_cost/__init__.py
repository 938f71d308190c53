"""Storage cost and lifecycle: what each clinic's files cost per storage class, how they age into cheaper
classes (lifecycle rules, the tags that keep some files out), restores of archived files, metrics, costs,
alerts and the admins' dashboard."""
