"""What `recoup demo` prints while it trains (recoup/demo.py, step 2 = `recoup train --promote`): progress lines
(stages, trees with an ETA) in one log format on stderr, no third-party warnings; results on stdout."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

from features.settings import LOG_LINE

ROOT = Path(__file__).resolve().parents[2]
HIDDEN = ("WARNING mlflow", "[mlflow", "UserWarning", "FutureWarning", "DeprecationWarning", "Successfully registered")


def run_recoup(args: list[str], home: Path, cwd: Path, timeout: float = 600) -> subprocess.CompletedProcess:
    """``recoup ARGS`` in a fresh process with its own homes (MLflow's tracking URI and BentoML's store are bound
    per process)."""
    env = {k: v for k, v in os.environ.items() if k not in ("RECOUP_BUNDLE_DIR", "MLFLOW_TRACKING_URI", "BENTOML_HOME")}
    env.update(RECOUP_HOME=str(home), PYTHONPATH=str(ROOT), PYTHONDONTWRITEBYTECODE="1", COLUMNS="200")
    return subprocess.run(
        [sys.executable, "-m", "recoup.cli", *args], capture_output=True, text=True, timeout=timeout, env=env, cwd=cwd
    )


def check_log(stderr: str, only_log_lines: bool = True) -> list[str]:
    """The lines of ``stderr``: none a hidden third-party warning and, with ``only_log_lines``, each a log line of
    the one format (without: a command's own notes on stderr, such as `keys create`'s, are allowed)."""
    lines = [line for line in stderr.splitlines() if line.strip()]
    off = [line for line in lines if not re.match(LOG_LINE, line)]
    assert not (off and only_log_lines), "lines not in the log format:\n" + "\n".join(off[:10])
    noisy = [line for line in lines if any(h in line for h in HIDDEN)]
    assert not noisy, "third-party warnings shown:\n" + "\n".join(noisy[:10])
    return lines


def test_training_step_shows_progress_in_one_format(small_history_dir, tmp_path):
    res = run_recoup(
        ["train", "--data", str(small_history_dir), "--n-estimators", "60", "--promote"], tmp_path, tmp_path
    )
    assert res.returncode == 0, res.stderr[-3000:]
    lines = check_log(res.stderr)
    text = "\n".join(lines)
    for stage in (
        "[training.train] loading ",
        "[training.train] opening the MLflow run in sqlite:",
        "[training.train] building point-in-time features for 4000 claims",
        "[training.train] training likelihood model on ",
        "[training.train] likelihood model: ",
        "[training.train] training cause model on ",
        "[training.train] logging the run to MLflow",
        "[training.export] exported version 1 to the BentoML store",
    ):
        assert stage in text, stage
    # boosting progress: the first line at 25 trees always, with the first metric and an ETA bounded by the cap
    assert re.search(
        r"\[features\.progress\] likelihood: 25/60 trees, valid binary_logloss [\d.]+, \d+ s, ETA at most ", text
    )
    # results on stdout, not in the log
    assert res.stdout.startswith("model recoup-risk version 1 (champion)\n"), res.stdout
