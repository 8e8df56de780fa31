"""Event sources and event plumbing: queues (SQS-compatible), and later schedules and mappings."""
