"""Event source mappings from lambdad's SQS-compatible queues to functions.

``store`` keeps the mappings (``<data_dir>/mappings.db``), ``service`` answers the Lambda API's
Create/Get/Update/Delete/ListEventSourceMappings and owns one ``poller`` per enabled mapping,
``filters`` evaluates FilterCriteria, ``api`` binds the operations to HTTP.
"""
