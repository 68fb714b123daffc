"""Progress of long steps as log lines (the CLI's one format, on stderr): boosting iterations with an ETA.

A LightGBM callback, not a bar: log lines read the same in a terminal, a CI log and a file, and interleave
with the stages' own lines. Nothing happens at import.
"""

from __future__ import annotations

import logging
import time
from typing import Callable

log = logging.getLogger(__name__)

#: a line every this many boosting iterations ...
EVERY_ITERATIONS = 25
#: ... but at most one every this many seconds (a fast model logs a few lines, a slow one every ~25 trees)
MIN_SECONDS = 5.0


def duration(seconds: float) -> str:
    """``seconds`` for people: ``42 s``, ``3 min 05 s``."""
    s = max(int(round(seconds)), 0)
    return f"{s} s" if s < 60 else f"{s // 60} min {s % 60:02d} s"


def boosting_progress(
    name: str,
    total: int,
    early_stopping: bool,
    every: int = EVERY_ITERATIONS,
    min_seconds: float = MIN_SECONDS,
    clock: Callable[[], float] = time.monotonic,
) -> Callable:
    """A LightGBM callback that logs ``name: 75/1000 trees, valid binary_logloss 0.1812, 12 s, ETA 2 min 31 s``
    every ``every`` iterations (at most one line per ``min_seconds``). The ETA is the time the remaining
    iterations up to ``total`` take at the pace since the last line; with ``early_stopping`` an upper bound."""
    start: list[float] = []  # the end of the first iteration
    last = [0.0, 1.0]  # the time and iteration of the last line (the first iteration's until one is logged)

    def callback(env) -> None:
        now = clock()
        if not start:
            start.append(now)
            last[0] = now
        done = env.iteration + 1
        if done % every or done >= total or (now - last[0] < min_seconds and done != every):
            return
        pace = (now - last[0]) / max(done - last[1], 1)  # the recent pace: trees get cheaper as training goes
        last[:] = [now, done]
        elapsed = now - start[0]
        eta = pace * (total - done)
        metric = ""
        if env.evaluation_result_list:
            _, name_, value = env.evaluation_result_list[0][:3]
            metric = f", valid {name_} {value:.4f}"
        bound = "at most " if early_stopping else ""
        log.info("%s: %d/%d trees%s, %s, ETA %s%s", name, done, total, metric, duration(elapsed), bound, duration(eta))

    callback.order = 5  # type: ignore[attr-defined]  # before early stopping (order 30): its last line is logged
    return callback
