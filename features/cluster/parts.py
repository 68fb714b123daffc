"""Partitions written to a folder that every worker and the client reach, and read back as a Dask DataFrame
(docs/scale.md, "Training on a cluster").

A task writes its partition as soon as it is computed (Parquet: a temporary name, then a rename), so the workers
keep no table in memory between steps; each later pass reads only the columns it asks (Dask's column projection
reaches :meth:`PartReader.__call__`). A lost worker loses no written partition: what is on disk is read again,
not recomputed through the chain of states.

The folder (:func:`scratch`): ``RECOUP_DASK_SCRATCH`` (a shared path, or an fsspec URL such as
``s3://bucket/recoup`` with its filesystem package installed), else ``RECOUP_HOME/dask/parts`` on a local cluster.
Each run writes in a folder of its own, removed when the run ends, whatever happens.
"""

from __future__ import annotations

import os
import pickle
import uuid
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Callable, Iterator

import pandas as pd

from features.errors import RecoupError

SCRATCH_ENV = "RECOUP_DASK_SCRATCH"


def _fs(url: str) -> tuple[Any, str]:
    from fsspec.core import url_to_fs

    return url_to_fs(url)


@contextmanager
def scratch(client: Any, label: str = "table") -> Iterator[str]:
    """A new folder for one run's partitions (removed at the end). A remote scheduler's workers do not see this
    machine's folders: ``RECOUP_DASK_SCRATCH`` must then name a folder they share with it."""
    root = os.environ.get(SCRATCH_ENV, "").strip()
    if not root:
        if getattr(client, "cluster", None) is None:
            raise RecoupError(
                f"{SCRATCH_ENV} is not set: on a remote cluster the workers write the chain's states (and, to train, "
                "the labelled table) to a folder that they and this process share (a network path, or a URL such as "
                "s3://bucket/recoup)"
            )
        from features.cluster.client import dask_directory

        root = str(dask_directory() / "parts")
    try:
        url = subfolder(root, label)
        if "://" not in root:  # the chain's states are pickles the workers load: nobody else may write there
            os.chmod(url, 0o700)
    except RecoupError as e:
        raise RecoupError(f"{SCRATCH_ENV}: {e}") from None
    except OSError as e:
        raise RecoupError(f"{SCRATCH_ENV}: cannot make {url} private: {e.strerror or e}") from None
    fs, folder = _fs(url)
    try:
        yield url
    finally:
        try:
            fs.rm(folder, recursive=True)
        except FileNotFoundError:
            pass


@contextmanager
def _atomic(folder: str, name: str, what: str) -> Iterator[Any]:
    """A binary file ``name`` in ``folder``, written under a temporary name and renamed when the block ends
    without error (a retried task replaces it whole; a reader never sees half of it; nothing is left on failure);
    an OSError is one RecoupError naming ``what``."""
    fs, base = _fs(folder)
    final, tmp = f"{base}/{name}", f"{base}/.{name}.{uuid.uuid4().hex[:8]}.tmp"
    try:
        with fs.open(tmp, "wb") as out:
            yield out
        fs.mv(tmp, final)
    except OSError as e:
        raise RecoupError(f"{folder}: cannot write {what} ({e.strerror or e})") from None
    finally:
        if fs.exists(tmp):
            fs.rm(tmp)


def write_part(frame: pd.DataFrame, folder: str, index: int) -> str:
    """Write one partition as ``part-<index>.parquet`` in ``folder``, atomically (:func:`_atomic`); its path."""
    name = f"part-{index:05d}.parquet"
    with _atomic(folder, name, f"partition {index}") as out:
        frame.to_parquet(out, index=True)
    return _url(folder, f"{_fs(folder)[1]}/{name}")


def _url(folder: str, path: str) -> str:
    """``path`` (the filesystem's own form) as a URL of ``folder``'s protocol."""
    return path if "://" not in folder else f"{folder.split('://', 1)[0]}://{path}"


@contextmanager
def stream_writer(folder: str, name: str) -> Iterator[Callable[[Any], None]]:
    """Write ``name`` in ``folder`` as a stream of pickled items (``put(item)`` for each), atomically
    (:func:`_atomic`). For what this run's own tasks write and read back (the chain's states), never for input
    data."""
    with _atomic(folder, name, name) as out:
        yield lambda item: pickle.dump(item, out, protocol=5)


def stream_items(path: str) -> Iterator[Any]:
    """The items of a stream written by :func:`stream_writer`, in order (each read as it is asked)."""
    fs, p = _fs(path)
    try:
        with fs.open(p, "rb") as f:
            while True:
                try:
                    yield pickle.load(f)
                except EOFError:
                    return
    except OSError as e:  # the run's folder removed or unreachable while it runs
        raise RecoupError(f"{path}: cannot read a written state ({e.strerror or e})") from None


def remove(path: str) -> None:
    """Remove a written file (none: nothing to do)."""
    fs, p = _fs(path)
    try:
        fs.rm(p)
    except FileNotFoundError:
        pass


def subfolder(folder: str, label: str) -> str:
    """A new folder inside ``folder`` (a URL of its protocol)."""
    fs, base = _fs(folder)
    sub = f"{base.rstrip('/')}/{label}-{uuid.uuid4().hex[:12]}"
    try:
        fs.makedirs(sub, exist_ok=True)
    except OSError as e:
        raise RecoupError(f"{folder}: cannot create {sub}: {e.strerror or e}") from e
    return _url(folder, sub)


def part_bytes(path: str) -> int:
    """A written partition's size on disk."""
    fs, p = _fs(path)
    return int(fs.size(p))


def read_part(path: str, meta: pd.DataFrame, columns: list[str] | None = None) -> pd.DataFrame:
    """A written partition's ``columns`` (default all), with ``meta``'s dtypes and index dtype (Parquet gives
    text back as strings and dates in its own units)."""
    cols = list(meta.columns) if columns is None else list(columns)
    try:
        df = pd.read_parquet(path, columns=cols)
    except OSError as e:  # the run's folder removed or unreachable while it runs
        raise RecoupError(f"{path}: cannot read a written partition ({e.strerror or e})") from None
    for c in cols:
        if df[c].dtype != meta[c].dtype:
            df[c] = df[c].astype(meta[c].dtype)
    if df.index.dtype != meta.index.dtype:
        df.index = df.index.astype(meta.index.dtype)
    df.index.name = meta.index.name
    return df


@dataclass(frozen=True)
class PartReader:
    """Reads a written partition (``from_map``'s function: its ``columns`` argument takes Dask's projection)."""

    meta: pd.DataFrame

    def __call__(self, path: str, columns: list[str] | None = None) -> pd.DataFrame:
        return read_part(path, self.meta, columns)


def frame_of(paths: list[str], reader: Any, meta: pd.DataFrame) -> Any:
    """The written partitions as one Dask DataFrame (``reader(path, columns=...)`` reads one; ``meta`` its empty
    frame), in the order of ``paths``."""
    import dask
    import dask.dataframe as dd

    if not paths:
        raise RecoupError("no partitions were written")
    # object columns stay object (the table's dtypes), not Arrow strings
    with dask.config.set({"dataframe.convert-string": False}):
        return dd.from_map(reader, paths, meta=meta, enforce_metadata=False, label="read-parts")
