"""Which Dask cluster a command runs on, and the connection to it.

``cluster_spec(option)``: the ``--cluster`` option, else ``RECOUP_DASK_SCHEDULER``; empty = no cluster (one
process, as without Dask). ``connect(spec)``: a context manager yielding a ``distributed.Client`` (or None
without a spec):

- ``local`` / ``local:N``: a LocalCluster of N worker processes (default 2, at most 64), one thread each, a memory
  limit per worker (``RECOUP_DASK_MEMORY_LIMIT``, e.g. ``4GB``; default min(8 GB, RAM / N)), spilling to disk in
  ``RECOUP_HOME/dask``, no dashboard. It is stopped when the block ends.
- ``tcp://host:port`` / ``tls://host:port`` (or ``host:port``): a running scheduler; ``PATH`` of an existing file: a
  scheduler file (``dask scheduler --scheduler-file PATH``). TLS certificates come from Dask's configuration
  (``distributed.comm.tls.*``, e.g. ``DASK_DISTRIBUTED__COMM__TLS__CA_FILE``; docs/scale.md).

A malformed spec, or a scheduler that does not answer within ``RECOUP_DASK_CONNECT_TIMEOUT`` seconds (default 10),
is one RecoupError line."""

from __future__ import annotations

import logging
import os
import re
import sys
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

from features.errors import RecoupError

ENV = "RECOUP_DASK_SCHEDULER"
MEMORY_ENV = "RECOUP_DASK_MEMORY_LIMIT"
TIMEOUT_ENV = "RECOUP_DASK_CONNECT_TIMEOUT"
DEFAULT_WORKERS = 2
MAX_WORKERS = 64
DEFAULT_TIMEOUT_S = 10.0
MAX_MEMORY_PER_WORKER = 8 * 1024**3
MIN_MEMORY_PER_WORKER = 256 * 1024**2
NO_WORKERS_TIMEOUT_S = 300

_LOCAL = re.compile(r"^local(?::(\d{1,3}))?$")
_ADDRESS = re.compile(r"^(?:(?:tcp|tls|ws|wss|ucx)://)?(\[[0-9a-fA-F:]+\]|[A-Za-z0-9_.-]+):(\d{1,5})$")

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Target:
    """A parsed spec: a local cluster of ``workers`` processes, a scheduler ``address`` or a ``scheduler_file``."""

    kind: str  # "local" | "address" | "file"
    workers: int = 0
    address: str = ""
    scheduler_file: str = ""

    def describe(self) -> str:
        if self.kind == "local":
            return f"a local Dask cluster of {self.workers} worker processes"
        if self.kind == "file":
            return f"the Dask scheduler of {self.scheduler_file}"
        return f"the Dask scheduler at {self.address}"


def cluster_spec(option: str | None) -> str | None:
    """The cluster to use: ``option`` when given (``""`` = none, overriding the environment), else
    ``RECOUP_DASK_SCHEDULER``; None = one process, no Dask."""
    value = option if option is not None else os.environ.get(ENV, "")
    value = value.strip()
    return value or None


def parse_spec(spec: str) -> Target:
    """``local[:N]``, a scheduler address or a scheduler file; anything else is a RecoupError."""
    text = spec.strip()
    m = _LOCAL.match(text)
    if m:
        n = int(m.group(1)) if m.group(1) else DEFAULT_WORKERS
        if not 1 <= n <= MAX_WORKERS:
            raise RecoupError(f"--cluster local:N needs 1 to {MAX_WORKERS} workers, got {n}")
        return Target("local", workers=n)
    if text.startswith("local"):
        raise RecoupError(f"--cluster: expected local or local:N (N from 1 to {MAX_WORKERS}), got {text[:40]!r}")
    m = _ADDRESS.match(text)
    if m:
        port = int(m.group(2))
        if not 1 <= port <= 65535:
            raise RecoupError(f"--cluster: port {port} of {text[:60]!r} is not from 1 to 65535")
        return Target("address", address=text if "://" in text else f"tcp://{text}")
    if Path(text).is_file():
        return Target("file", scheduler_file=str(Path(text).resolve()))
    raise RecoupError(
        f"--cluster (or {ENV}): expected local, local:N, a scheduler address tcp://HOST:PORT or an existing "
        f"scheduler file, got {text[:60]!r}"
    )


def memory_limit(workers: int) -> int:
    """Bytes per local worker: ``RECOUP_DASK_MEMORY_LIMIT`` (``4GB``, ``512MiB`` or bytes), else min(8 GB, RAM / N)."""
    import psutil  # a dependency of distributed
    from dask.utils import parse_bytes

    ram = int(psutil.virtual_memory().total)
    text = os.environ.get(MEMORY_ENV, "").strip()
    if not text:
        return max(MIN_MEMORY_PER_WORKER, min(MAX_MEMORY_PER_WORKER, ram // max(workers, 1)))
    try:
        value = int(parse_bytes(text))
    except (ValueError, TypeError):
        value = -1
    if not MIN_MEMORY_PER_WORKER <= value <= ram:
        raise RecoupError(
            f"{MEMORY_ENV} must be a size from 256MiB to the machine's {ram / 1024**3:.0f} GiB, got {text[:20]!r}"
        )
    return value


def connect_timeout() -> float:
    """Seconds to wait for a scheduler (``RECOUP_DASK_CONNECT_TIMEOUT``, 1 to 600; default 10)."""
    text = os.environ.get(TIMEOUT_ENV, "").strip()
    if not text:
        return DEFAULT_TIMEOUT_S
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not 1.0 <= value <= 600.0:
        raise RecoupError(f"{TIMEOUT_ENV} must be a number of seconds from 1 to 600, got {text[:20]!r}")
    return value


def _quiet_distributed() -> None:
    """Dask's own log lines from WARNING, in this process and the worker processes it starts (they read
    ``DASK_LOGGING__DISTRIBUTED`` when they import distributed)."""
    os.environ.setdefault("DASK_LOGGING__DISTRIBUTED", "warning")
    for name in ("distributed", "distributed.worker", "distributed.scheduler", "distributed.nanny"):
        logging.getLogger(name).setLevel(logging.WARNING)
    # "Shuffle ... initialized / deactivated" at WARNING for every distributed join or group-by: routine
    logging.getLogger("distributed.shuffle").setLevel(logging.ERROR)


def dask_directory() -> Path:
    """Workers' scratch and spill folder: ``RECOUP_HOME/dask``."""
    from features.settings import recoup_home

    d = recoup_home() / "dask"
    d.mkdir(parents=True, exist_ok=True)
    return d


@contextmanager
def connect(spec: str | None) -> Iterator[Any]:
    """A ``distributed.Client`` for ``spec`` (see the module), closed (and a local cluster stopped) at the end;
    None without a spec (nothing of Dask is imported then)."""
    if not spec:
        yield None
        return
    target = parse_spec(spec)
    _quiet_distributed()
    try:
        from distributed import Client, LocalCluster
    except ModuleNotFoundError as exc:
        raise RecoupError(
            f"--cluster needs Dask ({exc.name} is missing): install the extra 'cluster' (make setup)"
        ) from None
    import dask

    timeout = connect_timeout()
    cluster = None
    settings: dict[str, Any] = {
        "distributed.comm.timeouts.connect": f"{timeout}s",
        "logging.distributed": "warning",
        # a local cluster whose workers all died fails its waiting tasks instead of waiting for workers forever
        "distributed.scheduler.no-workers-timeout": f"{NO_WORKERS_TIMEOUT_S}s",
        # local workers without Dask's MALLOC_TRIM_THRESHOLD_=65536: it turns off glibc's dynamic mmap threshold,
        # so every large numpy array is a fresh mmap (numpy-heavy tasks ~2.5x slower here; docs/scale.md)
        "distributed.nanny.pre-spawn-environ.MALLOC_TRIM_THRESHOLD_": None,
    }
    if target.kind == "local":
        # results spilled to disk earlier than Dask's 60/70 %: a partition's features and the summary chain need
        # room beside what a worker holds (10M claims: a worker at the default reached its limit and restarted)
        settings.update({"distributed.worker.memory.target": SPILL_TARGET, "distributed.worker.memory.spill": SPILL_AT})
    with dask.config.set(settings):
        if target.kind == "local":
            limit = memory_limit(target.workers)
            log.info(
                "starting %s (1 thread, %.1f GiB each, spilling to %s)",
                target.describe(),
                limit / 1024**3,
                dask_directory(),
            )
            # the worker processes are spawned with this process's sys.path: put the folder of the packages this
            # process runs first, so that they import the same code (not another copy on the path, e.g. a model's)
            saved_path = list(sys.path)
            sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
            try:
                cluster = LocalCluster(
                    n_workers=target.workers,
                    threads_per_worker=1,
                    processes=True,
                    memory_limit=limit,
                    local_directory=str(dask_directory()),
                    dashboard_address=None,
                    # the scheduler's HTTP routes (health, metrics; no dashboard) on a free loopback port, not 8787
                    scheduler_kwargs={"dashboard": False, "dashboard_address": "127.0.0.1:0"},
                )
                client = Client(cluster, timeout=timeout)
            except (OSError, TimeoutError, RuntimeError) as exc:  # RuntimeError: a worker process did not start
                if cluster is not None:
                    cluster.close()
                raise RecoupError(f"could not start {target.describe()}: {exc}") from None
            finally:
                sys.path[:] = saved_path
        else:
            log.info("connecting to %s", target.describe())
            try:
                if target.kind == "file":
                    client = Client(scheduler_file=target.scheduler_file, timeout=timeout)
                else:
                    client = Client(target.address, timeout=timeout)
            except (OSError, TimeoutError, ValueError) as exc:
                reason = str(exc).splitlines()[0][:200] if str(exc) else type(exc).__name__
                raise RecoupError(
                    f"cannot reach {target.describe()} within {timeout:g} s ({reason}); check the address, that the "
                    "scheduler runs and that this machine may reach it"
                ) from None
    try:
        client.register_plugin(_trim_plugin())
    except Exception as exc:  # noqa: BLE001 - a scheduler that refuses plugins: run without the trim
        log.warning("workers will not return freed memory after tasks: %s", type(exc).__name__)
    try:
        yield client
    finally:
        client.close()
        if cluster is not None:
            cluster.close()


#: fractions of a local worker's memory limit at which it starts spilling results to disk (by estimate, then by
#: the process's memory); Dask's defaults are 0.6 and 0.7
SPILL_TARGET, SPILL_AT = 0.4, 0.5
#: seconds between two returns of freed heap memory to the system on a worker (see :class:`TrimMemory`)
TRIM_EVERY_S = 1.0


def trim_memory() -> int:
    """Give the heap's freed memory back to the system (glibc ``malloc_trim``); 0 where there is none."""
    import ctypes

    try:
        return int(ctypes.CDLL("libc.so.6").malloc_trim(0))
    except (OSError, AttributeError):
        return 0


def _trim_plugin() -> Any:
    from distributed.diagnostics.plugin import WorkerPlugin

    class TrimMemory(WorkerPlugin):
        """After a task's result is in memory, at most once a second: the memory its work freed goes back to the
        system. The workers run without Dask's ``MALLOC_TRIM_THRESHOLD_`` (speed); without a trim, the freed heap
        of large pandas steps stays in the process, counts as unmanaged memory that spilling cannot reduce, and a
        worker reaches its limit and is restarted (10M claims: it was)."""

        name = "recoup-trim-memory"

        def __init__(self) -> None:
            self.last = 0.0

        def transition(self, key: Any, start: str, finish: str, **kwargs: Any) -> None:
            if start == "executing" and finish == "memory":
                now = time.monotonic()
                if now - self.last >= TRIM_EVERY_S:
                    trim_memory()
                    self.last = time.monotonic()

    return TrimMemory()


def worker_count(client: Any) -> int:
    """Workers connected to ``client``'s scheduler now."""
    return len(client.scheduler_info(n_workers=-1).get("workers", {})) if client is not None else 0
