"""STAND-IN (DASK-SCORE) until DASK-TRAIN's client.py is merged: the agreed interface, minimal.

``cluster_spec(option)`` -> the option, else ``RECOUP_DASK_SCHEDULER``; ``""`` or unset = no cluster.
``connect(spec)`` yields a :class:`distributed.Client` (``local[:N]``: a LocalCluster of N worker processes, one
thread each; else a scheduler address) or None without a spec."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from typing import Any

from features.errors import RecoupError


def cluster_spec(option: str | None) -> str | None:
    spec = option if option is not None else os.environ.get("RECOUP_DASK_SCHEDULER", "")
    spec = spec.strip()
    return spec or None


@contextlib.contextmanager
def connect(spec: str | None) -> Iterator[Any]:
    if not spec:
        yield None
        return
    from distributed import Client, LocalCluster

    if spec == "local" or spec.startswith("local:"):
        try:
            n = int(spec.split(":", 1)[1]) if ":" in spec else 2
        except ValueError:
            raise RecoupError(f"--cluster local:N needs a number of workers (got {spec!r})") from None
        if not 1 <= n <= 64:
            raise RecoupError(f"--cluster local:N: N must be within 1-64 (got {n})")
        home = os.environ.get("RECOUP_HOME", "work")
        cluster = LocalCluster(
            n_workers=n,
            threads_per_worker=1,
            processes=True,
            dashboard_address=None,
            local_directory=os.path.join(home, "dask"),
        )
        try:
            with Client(cluster) as client:
                yield client
        finally:
            cluster.close()
        return
    try:
        client = Client(spec, timeout=10)
    except (OSError, TimeoutError, ValueError) as exc:
        raise RecoupError(f"--cluster {spec}: cannot reach the scheduler ({type(exc).__name__})") from None
    try:
        yield client
    finally:
        client.close()
