"""Progress lines of boosting: a real LightGBM training with the callback, a clock that ticks one second a call."""

from __future__ import annotations

import logging
import re

import lightgbm as lgb
import numpy as np

from features.progress import boosting_progress, duration


def _train(rounds: int, callback) -> None:
    rng = np.random.default_rng(0)
    X = rng.normal(size=(400, 3))
    y = (X[:, 0] + rng.normal(size=400) > 0).astype(int)
    train = lgb.Dataset(X, label=y)
    valid = lgb.Dataset(X[:100], label=y[:100], reference=train)
    params = {"objective": "binary", "verbosity": -1, "num_threads": 1}
    lgb.train(params, train, num_boost_round=rounds, valid_sets=[valid], valid_names=["valid"], callbacks=[callback])


def _ticks(step: float = 1.0):
    now = [0.0]

    def clock() -> float:
        now[0] += step
        return now[0]

    return clock


def test_a_line_every_25_trees_with_the_metric_and_an_eta(caplog):
    with caplog.at_level(logging.INFO, logger="features.progress"):
        _train(100, boosting_progress("likelihood", 100, early_stopping=True, clock=_ticks()))
    lines = [r.getMessage() for r in caplog.records]
    # one second per iteration: 25 trees (always), 50 and 75 (>= 5 s since the last line); not 100 (the end)
    assert [int(re.match(r"likelihood: (\d+)/100 trees", m).group(1)) for m in lines] == [25, 50, 75]
    assert lines[0] == "likelihood: 25/100 trees, valid binary_logloss {}, 24 s, ETA at most 1 min 15 s".format(
        lines[0].split("binary_logloss ")[1].split(",")[0]
    )


def test_fast_training_logs_at_most_a_line_per_five_seconds(caplog):
    with caplog.at_level(logging.INFO, logger="features.progress"):
        _train(200, boosting_progress("cause", 200, early_stopping=False, clock=_ticks(0.125)))
    lines = [r.getMessage() for r in caplog.records]
    # 1/8 s an iteration: the first line at 25, then every 50 (25 would be < 5 s); no "at most" without early stop
    assert [m.split("/")[0] for m in lines] == ["cause: 25", "cause: 75", "cause: 125", "cause: 175"]
    assert all("ETA at most" not in m and "ETA " in m for m in lines)


def test_duration_for_people():
    assert [duration(s) for s in (0, 42.4, 59.6, 60, 185, 3725)] == [
        "0 s",
        "42 s",
        "1 min 00 s",
        "1 min 00 s",
        "3 min 05 s",
        "62 min 05 s",
    ]


def test_the_eta_follows_the_recent_pace(caplog):
    """Slow first trees (2 s each up to 25), then 0.25 s: the next line's ETA is at the new pace."""
    calls = [0]

    def clock() -> float:
        calls[0] += 1
        return 2.0 * min(calls[0], 25) + 0.25 * max(calls[0] - 25, 0)

    with caplog.at_level(logging.INFO, logger="features.progress"):
        _train(100, boosting_progress("likelihood", 100, early_stopping=False, clock=clock))
    lines = [r.getMessage() for r in caplog.records]
    assert lines[0].endswith(", 48 s, ETA 2 min 30 s")  # 75 trees at 2 s
    assert lines[1].endswith(", 54 s, ETA 12 s")  # since the last line 0.25 s a tree; 50 left
