"""Where the project keeps its working files; read from the environment when called, never at import."""

from __future__ import annotations

import logging
import os
import sys
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

MODEL_NAME = "recoup-risk"  # the MLflow registered model and the BentoML store entry: training writes, serving reads


def recoup_home() -> Path:
    """The working folder (``RECOUP_HOME``, default ``./work``): MLflow store, BentoML store, reports."""
    home = Path(os.environ.get("RECOUP_HOME", "work")).resolve()
    home.mkdir(parents=True, exist_ok=True)
    return home


def tracking_uri() -> str:
    """``MLFLOW_TRACKING_URI`` if set, else a SQLite store in the working folder."""
    uri = os.environ.get("MLFLOW_TRACKING_URI")
    return uri if uri else f"sqlite:///{recoup_home() / 'mlflow.db'}"


def artifact_root() -> str:
    return str(recoup_home() / "mlartifacts")


def bentoml_home() -> Path:
    """``BENTOML_HOME`` if set, else ``RECOUP_HOME/bentoml``; exported so BentoML uses it."""
    home = Path(os.environ.get("BENTOML_HOME") or recoup_home() / "bentoml").resolve()
    os.environ["BENTOML_HOME"] = str(home)
    home.mkdir(parents=True, exist_ok=True)
    return home


def quiet_telemetry() -> None:
    """Turn off third-party usage tracking (MLflow, BentoML) for this process and its children."""
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    os.environ.setdefault("BENTOML_DO_NOT_TRACK", "true")
    os.environ.setdefault("DO_NOT_TRACK", "1")
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    os.environ.setdefault("MLFLOW_LOGGING_LEVEL", "WARNING")


#: the one format of every log line the commands write (stderr): BentoML's, so the service's lines look the same
LOG_FORMAT = "%(asctime)s [%(levelname)s] [%(name)s] %(message)s"
LOG_DATE_FORMAT = "%Y-%m-%dT%H:%M:%S%z"
#: a line of :data:`LOG_FORMAT` (tests check the commands' stderr against it)
LOG_LINE = r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d[+-]\d{4} \[(DEBUG|INFO|WARNING|ERROR|CRITICAL)\] \[[\w.:-]+\] \S"
#: our packages: their log lines are shown from INFO (DEBUG with --verbose), their warnings as log lines
OWN_PACKAGES = ("features", "training", "serving", "recoup")


def setup_cli_logging(verbose: bool = False) -> None:
    """Logging of a ``recoup`` command (the CLI only; a library user keeps their own setup): one format
    (:data:`LOG_FORMAT`) on stderr; our packages from INFO (DEBUG with ``verbose``); other libraries' log
    lines only from ERROR (WARNING with ``verbose``) and their Python warnings not at all (all with
    ``verbose``): a user cannot act on them. Our own warnings become log lines of the same format. MLflow is
    told not to install its own handler (``MLFLOW_CONFIGURE_LOGGING``), so its lines, if any, share the format.
    Like ``logging.basicConfig``, nothing is changed when the process has set up logging before (a test runner)."""
    import warnings

    os.environ["MLFLOW_CONFIGURE_LOGGING"] = "false"
    root = logging.getLogger()
    if root.handlers and not any(isinstance(h, _StderrHandler) for h in root.handlers):
        return  # logging set up by the process that runs the command (a test runner, an application): as it is
    if not root.handlers:
        handler = _StderrHandler()
        handler.setFormatter(logging.Formatter(LOG_FORMAT, LOG_DATE_FORMAT))
        root.addHandler(handler)
    root.setLevel(logging.WARNING if verbose else logging.ERROR)
    for name in OWN_PACKAGES:
        logging.getLogger(name).setLevel(logging.DEBUG if verbose else logging.INFO)
    logging.getLogger("py.warnings").setLevel(logging.WARNING)  # those the filters let through
    warnings.showwarning = _warning_as_log_line
    if not verbose:
        warnings.filterwarnings("ignore")
        warnings.filterwarnings("default", category=UserWarning, module=rf"({'|'.join(OWN_PACKAGES)})(\.|$)")


def _warning_as_log_line(message, category, filename, lineno, file=None, line=None) -> None:
    """A Python warning as one log line of the ``py.warnings`` logger: its message only, no source line."""
    logging.getLogger("py.warnings").warning("%s", str(message).strip().replace("\n", " "))


class _StderrHandler(logging.StreamHandler):
    """Log lines to the ``sys.stderr`` of the moment (a test runner may swap it between commands)."""

    def __init__(self) -> None:
        super().__init__(sys.stderr)

    @property
    def stream(self):
        return sys.stderr

    @stream.setter
    def stream(self, value) -> None:
        pass


@contextmanager
def mlflow_prints_to_debug_log(log: logging.Logger) -> Iterator[None]:
    """Within: what MLflow prints to stderr around logging ("Successfully registered model ...", "Created
    version ...") becomes DEBUG lines of ``log`` (shown with ``--verbose``), in the one format. For commands:
    it swaps the writer of MLflow's stream for the block (imports MLflow)."""
    import io

    try:  # an MLflow internal: if a release moves it, its prints are simply shown
        from mlflow.utils.logging_utils import MLFLOW_LOGGING_STREAM as stream
    except (ImportError, AttributeError):
        yield
        return
    buffer = io.StringIO()
    stream.write, stream.flush = buffer.write, buffer.flush
    try:
        yield
    finally:
        del stream.write, stream.flush
        for line in buffer.getvalue().splitlines():
            if line.strip():
                log.debug("%s", line.strip())


#: numeric settings read from the environment: name -> (type, default, minimum, maximum)
NUMERIC_SETTINGS: dict[str, tuple[type, float, float, float]] = {
    "RECOUP_SERVICE_WORKERS": (int, 1, 1, 64),
    "RECOUP_SERVICE_THREADS": (int, 4, 1, 256),
    "RECOUP_MAX_BODY_BYTES": (int, 16 * 1024 * 1024, 1024, 256 * 1024 * 1024),
    "RECOUP_JOURNAL_COMPACT_CLAIMS": (int, 20_000, 1, 10_000_000),
    "RECOUP_JOURNAL_COMPACT_SECONDS": (float, 3600, 1, 10_000_000),
    # the service's state refresh interval, seconds (serving/refresh.py; `recoup serve --refresh-every`)
    "RECOUP_REFRESH_EVERY": (int, 900, 60, 86_400),
    # seconds between two called refreshes (POST /refresh) of a worker; 0: no minimum
    "RECOUP_REFRESH_MIN_GAP": (int, 10, 0, 3600),
}


def env_number(name: str) -> float:
    """A numeric setting (:data:`NUMERIC_SETTINGS`) from the environment, its default when unset; a value
    that is not a number of its type within its bounds is a one-line error naming the variable."""
    from features.errors import RecoupError

    kind, default, lo, hi = NUMERIC_SETTINGS[name]
    text = os.environ.get(name, "").strip()
    if not text:
        return kind(default)
    try:
        value = kind(text)
    except ValueError:
        value = None
    if value is None or not lo <= value <= hi:
        what = "a whole number" if kind is int else "a number"
        raise RecoupError(f"{name} must be {what} from {lo:,} to {hi:,}, got {text[:20]!r}")
    return value


def check_env_numbers() -> None:
    """Check every numeric setting of the environment (before starting processes that read them)."""
    for name in NUMERIC_SETTINGS:
        env_number(name)
