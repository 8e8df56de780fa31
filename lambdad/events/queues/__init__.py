"""SQS-compatible standard queues: the API on lambdad's endpoint, and a Python API for lambdad itself.

The HTTP side (``api.py``, installed by ``wiring.install_queues``) speaks SQS's json protocol, so boto3
and the AWS CLI work with ``--endpoint-url``. Queue URLs are ``http://<host>/<account>/<name>`` and
ARNs ``arn:aws:sqs:<region>:<account>:<name>``. FIFO queues are not supported yet.

Other parts of lambdad (event source mappings, destinations, dead-letter queues) use the store
directly; every call raises the same AWS errors the API would (``QueueDoesNotExist``, ...)::

    store = QueueStore(data_dir / "queues.db", region, account)
    await store.start()                                   # retention purge; close() at shutdown
    arn = store.queue_arn("orders")                       # -> "arn:aws:sqs:<region>:<account>:orders"
    await store.exists(arn)                               # -> bool
    message_id = await store.send(arn_or_url, body, attributes=None, delay_seconds=None)
    messages = await store.receive(arn, max_messages=10, visibility_timeout=30, wait_s=20)
    for m in messages:                                    # store.Message: message_id, receipt_handle,
        ...                                               # body, md5_of_body, attributes (system),
    await store.delete(arn, m.receipt_handle)             # message_attributes, md5_of_message_attributes
    await store.change_visibility(arn, m.receipt_handle, timeout_s)

``attributes`` are SQS message attributes (``{"k": {"DataType": "String", "StringValue": "v"}}``,
a BinaryValue as bytes). ``receive`` with ``wait_s`` returns as soon as a message is available; with
``None`` it waits for the queue's ReceiveMessageWaitTimeSeconds. A message received more than its
queue's redrive ``maxReceiveCount`` times moves to the dead-letter queue on the next receive.
"""

from lambdad.events.queues.store import Message, QueueStore

__all__ = ["Message", "QueueStore"]
