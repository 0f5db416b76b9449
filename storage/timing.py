"""Every store call timed, for the storage latency metric (core.infra.metrics.StorageMetrics).

The store's own methods are replaced on the instance by timed ones rather than the store
being wrapped in a proxy: the object stays what it is (its type, its attributes), and a call
costs one coroutine frame and two clock reads more.
"""

from __future__ import annotations

import functools
import inspect
import time
from collections.abc import Awaitable, Callable
from typing import Any

from storage.base import Store

# The operations: every coroutine method of the Store protocol (its parts, such as
# storage.base_mfa's, included) but opening and closing.
OPERATIONS: tuple[str, ...] = tuple(
    sorted(
        {
            name
            for part in Store.__mro__
            for name, member in vars(part).items()
            if inspect.iscoroutinefunction(member) and name not in ("setup", "close")
        }
    )
)

Observe = Callable[[str, float], None]


def time_calls(store: Store, observe: Observe) -> None:
    """Report the duration of each call of an operation on `store`, failed ones included.
    Timing a store again replaces the earlier timing (one observer at a time)."""
    for name in OPERATIONS:
        method = getattr(store, name)
        method = getattr(method, "untimed", method)
        setattr(store, name, _timed(name, method, observe))


def _timed(name: str, method: Callable[..., Awaitable[Any]], observe: Observe) -> Any:
    @functools.wraps(method)
    async def timed(*args: Any, **kwargs: Any) -> Any:
        started = time.perf_counter()
        try:
            return await method(*args, **kwargs)
        finally:
            observe(name, time.perf_counter() - started)

    timed.untimed = method  # type: ignore[attr-defined]
    return timed
