"""The commands' logging (setup_cli_logging, stderr_to_debug_log), in a fresh process: it sets the process's
logging and warning filters, which an in-process test would leave changed for the others."""
# the block of SCRIPT ends with an MLflow print outside mlflow_prints_to_debug_log: shown as printed

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

from features.settings import LOG_LINE

ROOT = Path(__file__).resolve().parents[2]

SCRIPT = """
import logging, sys, warnings
from features.settings import setup_cli_logging, mlflow_prints_to_debug_log
setup_cli_logging(verbose=VERBOSE)
from mlflow.utils.logging_utils import eprint  # after: as in a command, MLflow is imported by the stage
warnings.warn_explicit("a library's warning", UserWarning, "x.py", 1, module="mlflow.models.signature")
warnings.warn_explicit("a library's future", FutureWarning, "y.py", 1, module="features.pipeline")
warnings.warn_explicit("our data note", UserWarning, "load.py", 1, module="features.contract.load")
logging.getLogger("mlflow.models").warning("mlflow warns")
logging.getLogger("alembic.runtime").info("alembic info")
logging.getLogger("training.train").info("our progress")
logging.getLogger("training.train").debug("our detail")
with mlflow_prints_to_debug_log(logging.getLogger("training.registry")):
    eprint("Successfully registered model 'x'.")
    logging.getLogger("training.registry").info("our line in the block")
eprint("after the block: MLflow prints again")
"""


def _stderr(verbose: bool) -> str:
    res = subprocess.run(
        [sys.executable, "-c", SCRIPT.replace("VERBOSE", str(verbose))],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=ROOT,
        env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"},
    )
    assert res.returncode == 0, res.stderr
    return res.stderr


def test_one_format_our_lines_only():
    err = _stderr(verbose=False)
    lines = err.splitlines()
    assert all(re.match(LOG_LINE, line) for line in lines[:-1]), err
    assert len(lines) == 4, err
    assert "[INFO] [training.train] our progress" in lines[1]
    assert "[INFO] [training.registry] our line in the block" in lines[2]
    assert lines[3] == "after the block: MLflow prints again"  # not a log line: the stream is back
    assert "[WARNING] [py.warnings]" in lines[0] and "our data note" in lines[0]
    for hidden in ("a library's", "mlflow warns", "alembic", "our detail", "Successfully registered"):
        assert hidden not in err


def test_verbose_shows_library_warnings_and_prints_as_debug_lines():
    err = _stderr(verbose=True)
    lines = err.splitlines()[:-1]
    assert all(re.match(LOG_LINE, line) for line in lines), err
    for shown in ("a library's warning", "a library's future", "mlflow warns", "our detail"):
        assert shown in err
    assert "alembic info" not in err  # other libraries: from WARNING
    assert "[DEBUG] [training.registry] Successfully registered model 'x'." in err
