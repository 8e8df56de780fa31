"""EventBridge Scheduler–compatible schedules that invoke Lambda functions (or send to queues).

``expressions`` parses at/rate/cron, ``store`` persists schedules and the delivery outbox
(``<data_dir>/scheduler.db``), ``service`` answers the API, ``firing`` advances due schedules once
per occurrence and delivers, ``targets`` reaches functions and queues, ``api`` binds it to HTTP.
"""
