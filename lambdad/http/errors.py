"""AWS error types and their wire rendering, in one place.

Every internal failure that a client should see is raised as an ``AwsError`` (or a subclass named
after AWS's error code) and converted to bytes at exactly one edge, ``AwsError.render``. The
rendering follows what botocore's parsers read for each protocol:

* rest-json (Lambda): header ``x-amzn-ErrorType``, body ``{"Type": "User", "message": ...}``
  (ValidationException has no ``Type``, as AWS sends it).
* json (Logs, SQS, Scheduler targets): header ``x-amzn-ErrorType`` and body ``{"__type", "message"}``.
* query (CloudWatch): an XML ``ErrorResponse``.
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
        doc: dict[str, object]
        status = self.status
        if protocol is Protocol.JSON:
            doc = {"__type": self.code, "message": self.message}
            content_type = b"application/x-amz-json-1.1"
            status = self.json_status or self.status
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
