"""A value that depends only on the current second, made again only when the second changes."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Generic, TypeVar

T = TypeVar("T")


class PerSecond(Generic[T]):
    """``make(int(time.time()))``, made at most once a second: the HTTP ``date`` header and the
    trace id's ``Root=1-<seconds>-`` are wanted on every request and change once a second."""

    def __init__(self, make: Callable[[int], T]) -> None:
        self._make = make
        self._second = int(time.time())
        self._value = make(self._second)

    def now(self) -> T:
        second = int(time.time())
        if second != self._second:
            self._second, self._value = second, self._make(second)
        return self._value
