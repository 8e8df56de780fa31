"""FunctionConfiguration documents, shaped field by field as AWS renders them."""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

#: Fields whose value the caller may set with CreateFunction / UpdateFunctionConfiguration.
CONFIG_FIELDS = (
    "Runtime",
    "Role",
    "Handler",
    "Description",
    "Timeout",
    "MemorySize",
    "Environment",
    "TracingConfig",
    "DeadLetterConfig",
    "KMSKeyArn",
    "EphemeralStorage",
    "LoggingConfig",
)

DEFAULTS: dict[str, Any] = {
    "Description": "",
    "Timeout": 3,
    "MemorySize": 128,
    "TracingConfig": {"Mode": "PassThrough"},
    "EphemeralStorage": {"Size": 512},
    "PackageType": "Zip",
    "Architectures": ["x86_64"],
    "SnapStart": {"ApplyOn": "None", "OptimizationStatus": "Off"},
}


def timestamp(now: datetime | None = None) -> str:
    """LastModified as AWS writes it: ``2024-01-31T12:34:56.789+0000``."""
    moment = now or datetime.now(UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}+0000"


def new_revision() -> str:
    return str(uuid.uuid4())


def runtime_version_arn(region: str, runtime: str) -> str:
    """A stable runtime version ARN per runtime, shaped like AWS's."""
    digest = hashlib.sha256(runtime.encode()).hexdigest()
    return f"arn:aws:lambda:{region}::runtime:{digest}"


def _logging(name: str, given: Mapping[str, Any] | None) -> dict[str, Any]:
    config = {"LogFormat": "Text", "LogGroup": f"/aws/lambda/{name}"}
    if given:
        config.update({k: v for k, v in given.items() if v is not None})
    return config


def new_configuration(
    params: Mapping[str, Any], arn: str, region: str, code_sha256_b64: str, code_size: int
) -> dict[str, Any]:
    """The $LATEST configuration of a function being created (State Pending until its code is ready)."""
    name = arn.rsplit(":", 1)[1]
    config: dict[str, Any] = {"FunctionName": name, "FunctionArn": arn, **DEFAULTS}
    for key in CONFIG_FIELDS:
        if params.get(key) is not None:
            config[key] = params[key]
    if "Environment" in config:
        config["Environment"] = {"Variables": dict(config["Environment"].get("Variables") or {})}
    if params.get("Architectures"):
        config["Architectures"] = list(params["Architectures"])
    config["LoggingConfig"] = _logging(name, params.get("LoggingConfig"))
    config["RuntimeVersionConfig"] = {"RuntimeVersionArn": runtime_version_arn(region, config["Runtime"])}
    config.update(
        CodeSha256=code_sha256_b64,
        CodeSize=code_size,
        Version="$LATEST",
        LastModified=timestamp(),
        RevisionId=new_revision(),
        State="Pending",
        StateReason="The function is being created.",
        StateReasonCode="Creating",
    )
    return config


def apply_update(config: dict[str, Any], params: Mapping[str, Any], region: str) -> dict[str, Any]:
    """UpdateFunctionConfiguration: fields given replace the old ones; the update starts InProgress."""
    updated = dict(config)
    for key in CONFIG_FIELDS:
        if key in params and params[key] is not None:
            updated[key] = params[key]
    if "Environment" in params and params["Environment"] is not None:
        updated["Environment"] = {"Variables": dict(params["Environment"].get("Variables") or {})}
    if params.get("LoggingConfig"):
        updated["LoggingConfig"] = _logging(
            config["FunctionName"], {**config["LoggingConfig"], **params["LoggingConfig"]}
        )
    if params.get("Runtime"):
        updated["RuntimeVersionConfig"] = {
            "RuntimeVersionArn": runtime_version_arn(region, params["Runtime"])
        }
    return mark_in_progress(updated)


def mark_in_progress(config: dict[str, Any]) -> dict[str, Any]:
    config.update(
        LastModified=timestamp(),
        RevisionId=new_revision(),
        LastUpdateStatus="InProgress",
        LastUpdateStatusReason="The function is being created.",
        LastUpdateStatusReasonCode="Creating",
    )
    return config


def mark_ready(config: dict[str, Any]) -> dict[str, Any]:
    """The code is unpacked and the function can run: State Active, last update Successful."""
    ready = {k: v for k, v in config.items() if not k.startswith(("StateReason", "LastUpdateStatusReason"))}
    ready.update(State="Active", LastUpdateStatus="Successful", RevisionId=new_revision())
    return ready
