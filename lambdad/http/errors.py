"""AWS error types and their wire rendering, in one place.

Every internal failure that a client should see is raised as an ``AwsError`` (or a subclass named
after AWS's error code) and converted to bytes at exactly one edge, ``AwsError.render``. The
rendering follows what botocore's parsers read for each protocol:

* rest-json (Lambda): header ``x-amzn-ErrorType``, body ``{"Type": "User", "message": ...}``
  (ValidationException has no ``Type``, as AWS sends it).
* json (Logs, SQS, Scheduler targets): header ``x-amzn-ErrorType`` and body ``{"__type", "message"}``.
* query (CloudWatch for older SDKs): an XML ``ErrorResponse``.
* smithy-rpc-v2-cbor (CloudWatch for current SDKs): a CBOR map ``{"__type", "message"}`` and, since
  CloudWatch is "query compatible", header ``x-amzn-query-error: Code;Sender`` that botocore reads.
"""

from __future__ import annotations

import json
from enum import Enum
from typing import ClassVar
from xml.sax.saxutils import escape


class Protocol(Enum):
    REST_JSON = "rest-json"
    JSON = "json"
    QUERY = "query"
    RPC_V2_CBOR = "smithy-rpc-v2-cbor"


class AwsError(Exception):
    """An error a client should see, carrying AWS's code, HTTP status and message."""

    code: ClassVar[str] = "ServiceException"
    status: ClassVar[int] = 500
    sender_fault: ClassVar[bool] = True
    #: Whether the rest-json body carries ``"Type": "User"`` (AWS omits it on some errors).
    typed_body: ClassVar[bool] = True
    #: AWS spells the message key ``Message`` on some errors and ``message`` on others.
    message_key: ClassVar[str] = "message"
    #: Status on the json protocol, where AWS services answer most client errors with 400.
    json_status: ClassVar[int | None] = None
    #: The legacy query-protocol code of a query-compatible json service (SQS), sent on the json
    #: protocol as header ``x-amzn-query-error: <code>;Sender``; botocore reports it as the error code.
    query_error: ClassVar[str | None] = None

    def __init__(self, message: str, *, extra: dict[str, object] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.extra = extra or {}

    def render(self, protocol: Protocol, request_id: str) -> tuple[int, list[tuple[bytes, bytes]], bytes]:
        """Return ``(status, headers, body)`` for this error on the given protocol."""
        headers = [
            (b"x-amzn-requestid", request_id.encode()),
            (b"x-amzn-errortype", self.code.encode()),
        ]
        if protocol is Protocol.QUERY:
            kind = "Sender" if self.sender_fault else "Receiver"
            body = (
                "<ErrorResponse><Error>"
                f"<Type>{kind}</Type><Code>{escape(self.code)}</Code>"
                f"<Message>{escape(self.message)}</Message>"
                f"</Error><RequestId>{request_id}</RequestId></ErrorResponse>"
            ).encode()
            headers.append((b"content-type", b"text/xml"))
            return self.status, headers, body
        if protocol is Protocol.RPC_V2_CBOR:
            import cbor2  # only CloudWatch speaks CBOR; keep it off every other path's imports

            kind = "Sender" if self.sender_fault else "Receiver"
            headers.append((b"x-amzn-query-error", f"{self.query_error or self.code};{kind}".encode()))
            headers.append((b"smithy-protocol", b"rpc-v2-cbor"))
            headers.append((b"content-type", b"application/cbor"))
            return (
                self.status,
                headers,
                cbor2.dumps({"__type": self.code, "message": self.message, **self.extra}),
            )
        doc: dict[str, object]
        status = self.status
        if protocol is Protocol.JSON:
            doc = {"__type": self.code, "message": self.message}
            content_type = b"application/x-amz-json-1.1"
            status = self.json_status or self.status
            if self.query_error is not None:
                fault = "Sender" if self.sender_fault else "Receiver"
                headers.append((b"x-amzn-query-error", f"{self.query_error};{fault}".encode()))
        else:
            doc = {"Type": "User" if self.sender_fault else "Service"} if self.typed_body else {}
            doc[self.message_key] = self.message
            content_type = b"application/json"
        doc.update(self.extra)
        headers.append((b"content-type", content_type))
        return status, headers, json.dumps(doc).encode()


# The error table: AWS's code, HTTP status, and whether the caller is at fault (default: yes).


class ResourceNotFoundException(AwsError):
    code = "ResourceNotFoundException"
    status = 404
    message_key = "Message"
    json_status = 400


class ResourceConflictException(AwsError):
    code = "ResourceConflictException"
    status = 409


class CodeSigningConfigNotFoundException(AwsError):
    code = "CodeSigningConfigNotFoundException"
    status = 404
    message_key = "Message"


class ProvisionedConcurrencyConfigNotFoundException(AwsError):
    code = "ProvisionedConcurrencyConfigNotFoundException"
    status = 404


class ResourceAlreadyExistsException(AwsError):
    code = "ResourceAlreadyExistsException"
    status = 400


class ResourceInUseException(AwsError):
    code = "ResourceInUseException"
    status = 400


class InvalidParameterValueException(AwsError):
    code = "InvalidParameterValueException"
    status = 400


class InvalidParameterException(AwsError):
    code = "InvalidParameterException"
    status = 400


class ValidationException(AwsError):
    code = "ValidationException"
    status = 400
    typed_body = False


class InvalidRequestContentException(AwsError):
    code = "InvalidRequestContentException"
    status = 400


class RequestEntityTooLargeException(AwsError):
    code = "RequestEntityTooLargeException"
    status = 413


class TooManyRequestsException(AwsError):
    code = "TooManyRequestsException"
    status = 429


class PreconditionFailedException(AwsError):
    code = "PreconditionFailedException"
    status = 412


class CodeStorageExceededException(AwsError):
    code = "CodeStorageExceededException"
    status = 400


class UnsupportedMediaTypeException(AwsError):
    code = "UnsupportedMediaTypeException"
    status = 415


class ServiceException(AwsError):
    code = "ServiceException"
    status = 500
    sender_fault = False


class UnknownOperationException(AwsError):
    code = "UnknownOperationException"
    status = 404


class ConflictException(AwsError):
    """EventBridge Scheduler's name clash (its errors carry ``Message``)."""

    code = "ConflictException"
    status = 409
    message_key = "Message"


# Authentication (SigV4) errors.


class UnrecognizedClientException(AwsError):
    code = "UnrecognizedClientException"
    status = 403


class InvalidSignatureException(AwsError):
    code = "InvalidSignatureException"
    status = 403


class IncompleteSignatureException(AwsError):
    code = "IncompleteSignatureException"
    status = 403


class MissingAuthenticationTokenException(AwsError):
    code = "MissingAuthenticationTokenException"
    status = 403


class AccessDeniedException(AwsError):
    code = "AccessDeniedException"
    status = 403


# Function-side failures surfaced by Invoke (502 family), named as AWS names them.


class EC2ThrottledException(AwsError):
    code = "EC2ThrottledException"
    status = 502
    sender_fault = False


# SQS on the json protocol: ``__type`` is the modeled shape's name (botocore picks the exception class
# from it), ``x-amzn-query-error`` the legacy code (what ``response["Error"]["Code"]`` then reads).
# SQS also uses InvalidParameterValue and MissingParameter (below, shared with CloudWatch): their shape
# name and legacy code are the same, so they need no header.


class _SqsError(AwsError):
    status = 400


class QueueDoesNotExist(_SqsError):
    code = "QueueDoesNotExist"
    query_error = "AWS.SimpleQueueService.NonExistentQueue"


class QueueNameExists(_SqsError):
    code = "QueueNameExists"
    query_error = "QueueAlreadyExists"


class InvalidAttributeName(_SqsError):
    code = "InvalidAttributeName"
    query_error = "InvalidAttributeName"


class InvalidAttributeValue(_SqsError):
    code = "InvalidAttributeValue"
    query_error = "InvalidAttributeValue"


class InvalidMessageContents(_SqsError):
    code = "InvalidMessageContents"
    query_error = "InvalidMessageContents"


class EmptyBatchRequest(_SqsError):
    code = "EmptyBatchRequest"
    query_error = "AWS.SimpleQueueService.EmptyBatchRequest"


class TooManyEntriesInBatchRequest(_SqsError):
    code = "TooManyEntriesInBatchRequest"
    query_error = "AWS.SimpleQueueService.TooManyEntriesInBatchRequest"


class BatchEntryIdsNotDistinct(_SqsError):
    code = "BatchEntryIdsNotDistinct"
    query_error = "AWS.SimpleQueueService.BatchEntryIdsNotDistinct"


class InvalidBatchEntryId(_SqsError):
    code = "InvalidBatchEntryId"
    query_error = "AWS.SimpleQueueService.InvalidBatchEntryId"


class BatchRequestTooLong(_SqsError):
    code = "BatchRequestTooLong"
    query_error = "AWS.SimpleQueueService.BatchRequestTooLong"


class ReceiptHandleIsInvalid(_SqsError):
    code = "ReceiptHandleIsInvalid"
    query_error = "ReceiptHandleIsInvalid"


class MessageNotInflight(_SqsError):
    code = "MessageNotInflight"
    query_error = "AWS.SimpleQueueService.MessageNotInflight"


class UnsupportedOperation(_SqsError):
    code = "UnsupportedOperation"
    query_error = "AWS.SimpleQueueService.UnsupportedOperation"


# CloudWatch's errors (query-protocol codes; CBOR and json carry the same codes).


class InvalidParameterValue(AwsError):
    code = "InvalidParameterValue"
    status = 400


class InvalidParameterCombination(AwsError):
    code = "InvalidParameterCombination"
    status = 400


class MissingParameter(AwsError):
    code = "MissingParameter"
    status = 400


class InvalidNextToken(AwsError):
    code = "InvalidNextToken"
    status = 400


class ValidationError(AwsError):
    """A model constraint broken, as the query-protocol services name it."""

    code = "ValidationError"
    status = 400


class InvalidAction(AwsError):
    code = "InvalidAction"
    status = 400
