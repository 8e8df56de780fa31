"""The client's one error type and the one edge where everything else is converted into it.

Exit statuses: 1 when the request or the function failed, 2 for bad usage (argparse's own), 3 when
the server could not be reached or refused the credentials.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from typing import Any

EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_UNREACHABLE = 3

_CREDENTIAL_CODES = frozenset(
    {
        "UnrecognizedClientException",
        "InvalidSignatureException",
        "IncompleteSignatureException",
        "MissingAuthenticationTokenException",
        "AccessDeniedException",
        "InvalidClientTokenId",
        "SignatureDoesNotMatch",
    }
)


class CliError(Exception):
    """A failure to show the user as one message that says what to do next."""

    def __init__(self, message: str, status: int = EXIT_FAILED) -> None:
        super().__init__(message)
        self.status = status


def unreachable(endpoint: str) -> CliError:
    return CliError(
        f"cannot reach lambdad at {endpoint}: is `lambdad serve` running? start it with `make serve` "
        "(or pass --endpoint-url / set LAMBDAD_ENDPOINT)",
        EXIT_UNREACHABLE,
    )


def translate(exc: Exception, endpoint: str) -> CliError:
    """A botocore exception as a ``CliError``; anything unknown is returned as its own text."""
    from botocore import exceptions as boto

    if isinstance(exc, boto.EndpointConnectionError | boto.ConnectTimeoutError | boto.ConnectionClosedError):
        return unreachable(endpoint)
    if isinstance(exc, boto.ReadTimeoutError):
        return CliError(f"lambdad at {endpoint} did not answer in time: {exc}")
    if isinstance(exc, boto.ParamValidationError):
        return CliError(str(exc).replace("Parameter validation failed:\n", "invalid parameter: "), EXIT_USAGE)
    if isinstance(exc, boto.ClientError):
        return _from_client_error(exc.response, endpoint)
    return CliError(str(exc))


def _from_client_error(response: dict[str, Any], endpoint: str) -> CliError:
    error = response.get("Error", {})
    code, message = error.get("Code", "Error"), error.get("Message", "")
    if code in _CREDENTIAL_CODES:
        return CliError(
            f"lambdad at {endpoint} refused the credentials ({code}: {message}). Use the keys the server "
            "accepts: the pair in <data dir>/credentials.json (found automatically when no AWS_ACCESS_KEY_ID "
            "is set; pass --data-dir if it is not ./.lambdad), or the LAMBDAD_ACCESS_KEY_ID/SECRET it was "
            "started with, via AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY or --profile",
            EXIT_UNREACHABLE,
        )
    if code == "ResourceNotFoundException" and "Function not found" in message:
        return CliError(
            f"{message}. List the functions with `lambdad functions`, or create it with `lambdad deploy`"
        )
    return CliError(f"{code}: {message}" if message else code)


def run_guarded(run: Callable[[argparse.Namespace], int], args: argparse.Namespace) -> int:
    """Run a command; print any failure as one line on stderr and return its exit status."""
    from botocore.exceptions import BotoCoreError, ClientError

    from lambdad.client.session import endpoint_of

    try:
        return run(args)
    except CliError as exc:
        failure = exc
    except (BotoCoreError, ClientError) as exc:
        failure = translate(exc, endpoint_of(args))
    except KeyboardInterrupt:
        print(file=sys.stderr)
        return 130
    print(f"lambdad {args.command}: {failure}", file=sys.stderr)
    return failure.status
