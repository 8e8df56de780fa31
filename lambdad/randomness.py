"""Random hex for the ids made on every request (request ids, trace ids).

``os.urandom`` is a system call; two per invoke cost the event loop's thread more than their
bytes are worth. The bytes come from the same source, fetched 4 KiB at a time. A process forked
from the server starts with an empty pool, so it never repeats the parent's ids.
"""

from __future__ import annotations

import os

_REFILL = 4096
_pool = b""
_at = 0


def random_hex(nbytes: int) -> str:
    """``os.urandom(nbytes).hex()``, from the pool."""
    global _pool, _at
    end = _at + nbytes
    if end > len(_pool):
        _pool, _at, end = os.urandom(max(_REFILL, nbytes)), 0, nbytes
    out = _pool[_at:end].hex()
    _at = end
    return out


def _forget() -> None:
    global _pool, _at
    _pool, _at = b"", 0


os.register_at_fork(after_in_child=_forget)
