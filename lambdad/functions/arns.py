"""Function identifiers as AWS accepts them: a name, a partial ARN or a full ARN, maybe qualified."""

from __future__ import annotations

import re
from dataclasses import dataclass

from lambdad.functions.validation import MAX_NAME_LENGTH
from lambdad.http.errors import (
    AccessDeniedException,
    InvalidParameterValueException,
    ResourceNotFoundException,
    ValidationException,
)

#: The FunctionName length AWS enforced when the recordings were made; botocore's model now allows
#: 256 (a 64-character name plus a 128-character alias fit in an ARN only that long), so it is applied
#: only to identifiers whose name is over 64 characters anyway, as AWS answered for those.
MAX_ARN_LENGTH = 140

_FUNCTION_ID = re.compile(
    r"^(?:arn:(?P<partition>aws[a-zA-Z-]*)?:lambda:)?"
    r"(?:(?P<region>(?:eusc-)?[a-z]{2}(?:(?:-gov)|(?:-iso[a-z]?))?-[a-z]+-\d):)?"
    r"(?:(?P<account>\d{12}):)?(?:function:)?(?P<name>[a-zA-Z0-9-_]+)"
    r"(?::(?P<qualifier>\$LATEST|[a-zA-Z0-9-_]+))?$"
)


@dataclass(frozen=True)
class FunctionRef:
    """A parsed FunctionName parameter: the bare name and the qualifier it carried, if any."""

    name: str
    qualifier: str | None


class Arns:
    """Builds and parses ARNs for one region and account."""

    def __init__(self, region: str, account_id: str) -> None:
        self.region = region
        self.account_id = account_id
        #: parse_function's answers (a function's callers repeat the same few identifiers).
        self._parsed: dict[tuple[str, str | None], FunctionRef] = {}

    def function(self, name: str, qualifier: str | None = None) -> str:
        arn = f"arn:aws:lambda:{self.region}:{self.account_id}:function:{name}"
        return f"{arn}:{qualifier}" if qualifier else arn

    def parse_function(self, identifier: str, qualifier: str | None = None) -> FunctionRef:
        """Resolve a FunctionName (already checked against the model's pattern) and a Qualifier."""
        ref = self._parsed.get((identifier, qualifier))
        if ref is None:
            ref = self._parse_function(identifier, qualifier)
            if len(self._parsed) >= 4096:
                self._parsed.clear()
            self._parsed[(identifier, qualifier)] = ref
        return ref

    def _parse_function(self, identifier: str, qualifier: str | None) -> FunctionRef:
        found = _FUNCTION_ID.match(identifier)
        if found is None:
            raise ResourceNotFoundException(f"Function not found: {self.function(identifier)}")
        if len(found.group("name")) > MAX_NAME_LENGTH:
            prefix = f"1 validation error detected: Value '{identifier}' at 'functionName' failed to satisfy constraint: "
            if len(identifier) > MAX_ARN_LENGTH:
                raise ValidationException(
                    f"{prefix}Member must have length less than or equal to {MAX_ARN_LENGTH}"
                )
            raise InvalidParameterValueException(
                f"{prefix}Member must have length less than or equal to {MAX_NAME_LENGTH}"
            )
        region = found.group("region")
        if region and region != self.region:
            raise ResourceNotFoundException(
                f"Functions from '{region}' are not reachable in this region ('{self.region}')"
            )
        account = found.group("account")
        name = found.group("name")
        if account and account != self.account_id:
            raise AccessDeniedException(
                f"User is not authorized to access functions of account {account} from account {self.account_id}."
            )
        derived = found.group("qualifier")
        if derived and qualifier and derived != qualifier:
            raise InvalidParameterValueException(
                "The derived qualifier from the function name does not match the specified qualifier."
            )
        return FunctionRef(name, derived or qualifier)
