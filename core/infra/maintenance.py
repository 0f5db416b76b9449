"""Work the process does besides answering requests: purging expired rows, and the one line
that says why storage could not be reached at start."""

from __future__ import annotations

import asyncio
import logging
import traceback
from pathlib import Path

from core.infra.clock import Clock
from core.infra.redact import redact_text, redact_url
from storage.base import StorageUnavailable, Store

log = logging.getLogger("vhod")

PURGE_INTERVAL_SECONDS = 600
MAX_REASON_CHARS = 300  # PyMongo's reasons carry a whole topology description


async def purge_expired_periodically(
    store: Store,
    clock: Clock,
    storage_url: str,
    interval: float = PURGE_INTERVAL_SECONDS,
    *,
    events_retention: float | None = None,
) -> None:
    """Delete expired states, counters, tokens, codes and events now and then, and audit
    events older than `events_retention` seconds (`audit.retention_days` as set now).

    MongoDB's TTL indexes do it there too; SQLite has nothing else that would."""
    while True:
        try:
            await store.purge_expired(clock())
            if events_retention is not None:
                await store.purge_events_before(clock() - events_retention)
        except StorageUnavailable as exc:
            log.warning(
                "purging expired rows failed, will retry: %s", redact_text(str(exc), storage_url)
            )
        except Exception as exc:
            # Anything else is a bug, but it must not end the purging for good. The message
            # is masked like any storage error; the place names the code without a value.
            where = traceback.extract_tb(exc.__traceback__)[-1]
            log.error(
                "purging expired rows failed, will retry: %s at %s:%d: %s",
                type(exc).__name__,
                Path(where.filename).name,
                where.lineno,
                redact_text(str(exc), storage_url),
            )
        await asyncio.sleep(interval)


def storage_unreachable_line(url: str, exc: BaseException) -> str:
    """One line for an operator: which storage (its password masked) and the driver's reason."""
    reason = " ".join(redact_text(str(exc), url).split()) or type(exc).__name__
    if len(reason) > MAX_REASON_CHARS:
        reason = reason[: MAX_REASON_CHARS - 1] + "…"
    return f"vhod: storage unreachable: {redact_url(url)}: {reason}"
