"""Lambda's own checks, the ones AWS makes after the API model's constraints have passed."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from lambdad.http.errors import InvalidParameterValueException

MIN_MEMORY_MB, MAX_MEMORY_MB = 128, 10240
MIN_TIMEOUT_S, MAX_TIMEOUT_S = 1, 900
MIN_EPHEMERAL_MB, MAX_EPHEMERAL_MB = 512, 10240
MAX_ENV_BYTES = 4096
MAX_NAME_LENGTH = 64
MAX_TAGS = 50

#: Variables the runtime sets itself; AWS refuses them in a function's environment.
RESERVED_ENV_KEYS = frozenset(
    "_HANDLER _X_AMZN_TRACE_ID AWS_DEFAULT_REGION AWS_REGION AWS_EXECUTION_ENV AWS_LAMBDA_FUNCTION_NAME "
    "AWS_LAMBDA_FUNCTION_MEMORY_SIZE AWS_LAMBDA_FUNCTION_VERSION AWS_LAMBDA_INITIALIZATION_TYPE "
    "AWS_LAMBDA_LOG_GROUP_NAME AWS_LAMBDA_LOG_STREAM_NAME AWS_ACCESS_KEY AWS_ACCESS_KEY_ID "
    "AWS_SECRET_ACCESS_KEY AWS_SESSION_TOKEN AWS_LAMBDA_RUNTIME_API LAMBDA_TASK_ROOT LAMBDA_RUNTIME_DIR".split()
)


def _range(name: str, value: int | None, low: int, high: int) -> None:
    if value is None:
        return
    if value > high:
        raise InvalidParameterValueException(
            f"'{name}' value failed to satisfy constraint: Member must have value less than or equal to {high}"
        )
    if value < low:
        raise InvalidParameterValueException(
            f"'{name}' value failed to satisfy constraint: Member must have value greater than or equal to {low}"
        )


def check_function_name(name: str) -> None:
    """A bare function name is at most 64 characters (the model allows 140 for ARNs)."""
    if len(name) > MAX_NAME_LENGTH:
        raise InvalidParameterValueException(
            f"1 validation error detected: Value '{name}' at 'functionName' failed to satisfy constraint: "
            f"Member must have length less than or equal to {MAX_NAME_LENGTH}"
        )


def check_limits(params: Mapping[str, Any]) -> None:
    """Memory, timeout and /tmp within Lambda's limits for zip functions."""
    _range("MemorySize", params.get("MemorySize"), MIN_MEMORY_MB, MAX_MEMORY_MB)
    _range("Timeout", params.get("Timeout"), MIN_TIMEOUT_S, MAX_TIMEOUT_S)
    storage = params.get("EphemeralStorage") or {}
    _range("EphemeralStorage.Size", storage.get("Size"), MIN_EPHEMERAL_MB, MAX_EPHEMERAL_MB)


def check_environment(environment: Mapping[str, Any] | None) -> None:
    """At most 4 KB of variables (measured as AWS does, on their JSON) and no reserved keys."""
    if not environment:
        return
    variables = environment.get("Variables") or {}
    reserved = sorted(RESERVED_ENV_KEYS.intersection(variables))
    if reserved:
        raise InvalidParameterValueException(
            "Lambda was unable to configure your environment variables because the environment variables you "
            "have provided contains reserved keys that are currently not supported for modification. Reserved "
            f"keys used in this request: {', '.join(reserved)}"
        )
    measured = json.dumps(variables, separators=(",", ":"))
    if len(measured.encode()) > MAX_ENV_BYTES:
        raise InvalidParameterValueException(
            "Lambda was unable to configure your environment variables because the environment variables you "
            f"have provided exceeded the 4KB limit. String measured: {measured}"
        )


def check_handler(handler: str | None, family: str) -> None:
    """Python and Node handlers name ``module.function``; custom runtimes may use anything."""
    if family == "custom" or handler is None:
        return
    if "." not in handler.strip(".") or handler.startswith(".") or handler.endswith("."):
        raise InvalidParameterValueException(
            f"Handler '{handler}' is not valid for this runtime: it must name a module and a function, "
            "such as 'index.handler' or 'app.lambda_handler'."
        )


def check_tags(current: Mapping[str, str], added: Mapping[str, str]) -> None:
    if not added:
        raise InvalidParameterValueException("An error occurred and the request cannot be processed.")
    if len({**current, **added}) > MAX_TAGS:
        raise InvalidParameterValueException("Number of tags exceeds resource tag limit.")
