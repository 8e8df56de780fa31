"""Resource-based policies: AddPermission, RemovePermission, GetPolicy, and their evaluation.

A policy belongs to a function, a version or an alias (stored under the qualifier, "" for the
function itself). Its RevisionId is the RevisionId of what it belongs to: a change of the policy
gives the function (or alias) a new one, as AWS does.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from lambdad.functions import configuration as cfg
from lambdad.functions.versions import REVISION_MISMATCH, is_number
from lambdad.http.errors import (
    InvalidParameterValueException,
    PreconditionFailedException,
    ResourceConflictException,
    ResourceNotFoundException,
)

if TYPE_CHECKING:
    from lambdad.functions.service import FunctionService

TABLE = "policies"
NOT_FOUND = "The resource you requested does not exist."
POLICY_REVISION_MISMATCH = (
    "The Revision Id provided does not match the latest Revision Id. Call the GetPolicy API to retrieve the "
    "latest Revision Id"
)
_ACCOUNT = re.compile(r"^\d{12}$")
_SERVICE = re.compile(r"^[a-z0-9.-]+\.(amazonaws\.com|amazon\.com)$")


def _principal(principal: str, account: str) -> str | dict[str, str]:
    if principal == "*":
        return "*"
    if _ACCOUNT.match(principal):
        return {"AWS": f"arn:aws:iam::{principal}:root"}
    if principal.startswith("arn:aws:iam::") or principal.startswith("arn:aws:sts::"):
        return {"AWS": principal}
    if _SERVICE.match(principal):
        return {"Service": principal}
    raise InvalidParameterValueException(
        "The provided principal was invalid. Please check the principal and try again."
    )


def statement(params: Mapping[str, Any], resource: str, account: str) -> dict[str, Any]:
    """One policy statement as AWS renders AddPermission's input."""
    doc: dict[str, Any] = {
        "Sid": params["StatementId"],
        "Effect": "Allow",
        "Principal": _principal(params["Principal"], account),
        "Action": params["Action"],
        "Resource": resource,
    }
    equals = {
        key: params[param]
        for param, key in (
            ("SourceAccount", "AWS:SourceAccount"),
            ("FunctionUrlAuthType", "lambda:FunctionUrlAuthType"),
            ("PrincipalOrgID", "aws:PrincipalOrgID"),
            ("EventSourceToken", "lambda:EventSourceToken"),
        )
        if params.get(param)
    }
    condition: dict[str, Any] = {}
    if equals:
        condition["StringEquals"] = equals
    if params.get("SourceArn"):
        condition["ArnLike"] = {"AWS:SourceArn": params["SourceArn"]}
    if params.get("InvokedViaFunctionUrl"):
        condition["Bool"] = {"lambda:InvokedViaFunctionUrl": "true"}
    if condition:
        doc["Condition"] = condition
    return doc


def _action_matches(pattern: str, action: str) -> bool:
    return pattern in ("*", "lambda:*") or pattern.lower() == action.lower()


def allows(
    policy: Mapping[str, Any] | None,
    action: str,
    *,
    public: bool = True,
    context: Mapping[str, str] | None = None,
) -> bool:
    """Whether a statement of ``policy`` allows ``action`` to anyone (``public``), given the request context.

    Conditions this evaluator knows (StringEquals on the context's keys) must hold; a statement with
    a condition on a key the context lacks (SourceArn, SourceAccount, ...) does not apply.
    """
    facts = {k.lower(): v for k, v in (context or {}).items()}
    for stmt in (policy or {}).get("Statement", []):
        if stmt.get("Effect") != "Allow" or not _action_matches(str(stmt.get("Action")), action):
            continue
        if public and stmt.get("Principal") not in ("*", {"AWS": "*"}):
            continue
        conditions = stmt.get("Condition") or {}
        if set(conditions) - {"StringEquals", "Bool"}:
            continue
        wanted = {**conditions.get("StringEquals", {}), **conditions.get("Bool", {})}
        if all(facts.get(key.lower()) == value for key, value in wanted.items()):
            return True
    return False


class PolicyService:
    def __init__(self, functions: FunctionService) -> None:
        self.functions = functions
        self.store = functions.store
        self.arns = functions.arns

    async def _target(self, name: str, qualifier: str | None) -> tuple[str, dict[str, Any] | None]:
        """Check the function, version or alias exists; returns (resource ARN, alias doc if an alias)."""
        await self.functions.load_version(name, "$LATEST")
        if qualifier is None:
            return self.arns.function(name), None
        if qualifier == "$LATEST":
            raise InvalidParameterValueException("We currently do not support adding policies for $LATEST.")
        if is_number(qualifier):
            await self.functions.load_version(name, qualifier, qualifier)
            return self.arns.function(name, qualifier), None
        if "$" in qualifier:  # the model allows "$" in a qualifier; no alias can have one (AWS's wording)
            raise ResourceNotFoundException(f"Function not found: {self.arns.function(name, qualifier)}")
        alias = await self.store.get_doc("aliases", name, qualifier)
        if alias is None:
            raise ResourceNotFoundException(f"Cannot find alias arn: {self.arns.function(name, qualifier)}")
        return self.arns.function(name, qualifier), alias

    async def _revise(self, name: str, qualifier: str | None, alias: dict[str, Any] | None) -> str:
        """Give the policy's owner a new RevisionId and return it."""
        revision = cfg.new_revision()
        if alias is not None:
            alias["RevisionId"] = revision
            await self.store.put_doc("aliases", name, alias["Name"], alias)
            return revision
        record = await self.functions.load_version(name, qualifier or "$LATEST")
        record.config["RevisionId"] = revision
        await self.store.put_function(record)
        return revision

    async def _owner_revision(self, name: str, qualifier: str | None, alias: dict[str, Any] | None) -> str:
        if alias is not None:
            return str(alias["RevisionId"])
        return str((await self.functions.load_version(name, qualifier or "$LATEST")).config["RevisionId"])

    async def add(self, params: Mapping[str, Any]) -> dict[str, Any]:
        ref = self.arns.parse_function(params["FunctionName"], params.get("Qualifier"))
        async with self.functions.lock(ref.name):
            resource, alias = await self._target(ref.name, ref.qualifier)
            key = ref.qualifier or ""
            stored = await self.store.get_doc(TABLE, ref.name, key)
            revision = await self._owner_revision(ref.name, ref.qualifier, alias)
            if params.get("RevisionId") and params["RevisionId"] != revision:
                message = POLICY_REVISION_MISMATCH if stored else REVISION_MISMATCH
                raise PreconditionFailedException(message)
            new = statement(params, resource, self.arns.account_id)
            policy = stored or {"Version": "2012-10-17", "Id": "default", "Statement": []}
            if any(s["Sid"] == new["Sid"] for s in policy["Statement"]):
                raise ResourceConflictException(
                    f"The statement id ({new['Sid']}) provided already exists. Please provide a new statement id, "
                    "or remove the existing statement."
                )
            policy["Statement"].append(new)
            await self.store.put_doc(TABLE, ref.name, key, policy)
            await self._revise(ref.name, ref.qualifier, alias)
        await self.functions.notify(ref.name)
        return {"Statement": json.dumps(new)}

    async def remove(self, params: Mapping[str, Any]) -> None:
        ref = self.arns.parse_function(params["FunctionName"], params.get("Qualifier"))
        async with self.functions.lock(ref.name):
            if await self.store.get_function(ref.name) is None:
                raise ResourceNotFoundException(f"No policy found for: {self.arns.function(ref.name)}")
            _, alias = await self._target(ref.name, ref.qualifier)
            key = ref.qualifier or ""
            policy = await self.store.get_doc(TABLE, ref.name, key)
            if policy is None:
                raise ResourceNotFoundException("No policy is associated with the given resource.")
            revision = await self._owner_revision(ref.name, ref.qualifier, alias)
            if params.get("RevisionId") and params["RevisionId"] != revision:
                raise PreconditionFailedException(REVISION_MISMATCH)
            sid = params["StatementId"]
            kept = [s for s in policy["Statement"] if s["Sid"] != sid]
            if len(kept) == len(policy["Statement"]):
                raise ResourceNotFoundException(f"Statement {sid} is not found in resource policy.")
            if kept:
                await self.store.put_doc(TABLE, ref.name, key, {**policy, "Statement": kept})
            else:
                await self.store.delete_doc(TABLE, ref.name, key)
            await self._revise(ref.name, ref.qualifier, alias)
        await self.functions.notify(ref.name)

    async def get(self, params: Mapping[str, Any]) -> dict[str, Any]:
        ref = self.arns.parse_function(params["FunctionName"], params.get("Qualifier"))
        try:
            _, alias = await self._target(ref.name, ref.qualifier)
        except ResourceNotFoundException:
            raise ResourceNotFoundException(NOT_FOUND) from None
        policy = await self.store.get_doc(TABLE, ref.name, ref.qualifier or "")
        if policy is None:
            raise ResourceNotFoundException(NOT_FOUND)
        revision = await self._owner_revision(ref.name, ref.qualifier, alias)
        return {"Policy": json.dumps(policy), "RevisionId": revision}

    async def policy_of(self, name: str, qualifier: str | None) -> dict[str, Any] | None:
        return await self.store.get_doc(TABLE, name, qualifier or "")
