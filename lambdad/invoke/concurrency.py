"""Concurrency accounting: the account limit, reserved concurrency, and AWS's throttle reasons.

A function with reserved concurrency R may run at most R copies and draws only from its reservation;
every other function shares what is left of the account limit after all reservations. Leases are taken
and returned through a context manager, so an error can never leak one.
"""

from __future__ import annotations

from lambdad.http.errors import TooManyRequestsException

RESERVED_EXCEEDED = "ReservedFunctionConcurrentInvocationLimitExceeded"
ACCOUNT_EXCEEDED = "ConcurrentInvocationLimitExceeded"


class Throttled(TooManyRequestsException):
    """429 with AWS's Reason field, which botocore exposes on the error response."""

    def __init__(self, reason: str) -> None:
        super().__init__("Rate Exceeded.", extra={"Reason": reason})
        self.reason = reason


class ConcurrencyLimiter:
    """Counts in-flight executions per function and for the unreserved pool."""

    def __init__(self, account_limit: int) -> None:
        self.account_limit = account_limit
        #: A plain dict, not a Counter: Counter's missing-key and delete methods are Python code,
        #: and every invoke takes and returns a lease.
        self.in_flight: dict[str, int] = {}
        self.unreserved_in_flight = 0
        self._reserved: dict[str, int] = {}
        self._reserved_total = 0  # the sum of _reserved, kept: every lease checks what is left

    def set_reserved(self, function: str, reserved: int | None) -> None:
        if reserved is None:
            self._reserved.pop(function, None)
        else:
            self._reserved[function] = reserved
        self._reserved_total = sum(self._reserved.values())

    @property
    def unreserved_limit(self) -> int:
        return self.account_limit - self._reserved_total

    def capacity(self, function: str) -> int:
        """The most copies of ``function`` that could run at once (the async dispatcher's bound)."""
        reserved = self._reserved.get(function)
        return reserved if reserved is not None else max(0, self.unreserved_limit)

    @property
    def total_in_flight(self) -> int:
        return sum(self.in_flight.values())

    def try_acquire(self, function: str) -> str | None:
        """Take a lease; returns None on success or the throttle reason."""
        reserved = self._reserved.get(function)
        if reserved is not None:
            if self.in_flight.get(function, 0) >= reserved:
                return RESERVED_EXCEEDED
        elif self.unreserved_in_flight >= self.unreserved_limit:
            return ACCOUNT_EXCEEDED
        else:
            self.unreserved_in_flight += 1
        self.in_flight[function] = self.in_flight.get(function, 0) + 1
        return None

    def acquire(self, function: str) -> bool:
        """Take one execution slot for ``function`` or raise Throttled; pass the result to release()."""
        reason = self.try_acquire(function)
        if reason is not None:
            raise Throttled(reason)
        return function in self._reserved

    def release(self, function: str, was_reserved: bool) -> None:
        """Give back a slot taken by acquire(), under the accounting in force when it was taken."""
        left = self.in_flight.get(function, 0) - 1
        if left > 0:
            self.in_flight[function] = left
        else:
            self.in_flight.pop(function, None)
        if not was_reserved:
            self.unreserved_in_flight -= 1
