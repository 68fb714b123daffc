"""features.cluster.parts: partitions written atomically to a scratch folder and read back exactly, only the
columns a pass asks, the folder removed at the end."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from features.cluster.parts import (
    SCRATCH_ENV,
    PartReader,
    frame_of,
    read_part,
    remove,
    scratch,
    stream_items,
    stream_writer,
    subfolder,
    write_part,
)
from features.errors import RecoupError


def _frame(n: int = 6, start: int = 0) -> pd.DataFrame:
    """The dtypes of a labelled partition: text with missing values, floats with NaN, days, flags, small ints."""
    df = pd.DataFrame(
        {
            "payer_id": np.array(["P1", None, "P3", "P1", "P2", "P9"][:n], dtype=object),
            "charge": np.array([1.5, np.nan, 3.25, 0.1, 2e9, -1.0][:n]),
            "submitted": pd.to_datetime(["2024-01-02", "2024-02-03", None, "2024-03-04", "2024-05-06", "2024-06-07"])[
                :n
            ].astype("datetime64[s]"),
            "usable": np.array([True, False, True, True, False, True][:n]),
            "part": np.arange(n, dtype=np.int8),
            "cause": np.array([None, "units", None, "duplicate", None, None][:n], dtype=object),
        },
        index=pd.Index([f"C{start + i}" for i in range(n)], dtype=object, name="claim_id"),
    )
    for c in ("payer_id", "cause"):  # the table's text columns are object (pandas 3 would infer str)
        df[c] = df[c].astype(object)
    return df


class _Counting(PartReader):
    """Records the columns each read asks (the synchronous scheduler runs it in this process)."""

    asked: list = []

    def __call__(self, path: str, columns: list[str] | None = None) -> pd.DataFrame:
        self.asked.append(None if columns is None else list(columns))
        return super().__call__(path, columns)


def test_a_part_reads_back_exactly_and_only_the_columns_asked(tmp_path):
    parts = [_frame(6, 0), _frame(4, 100)]
    paths = [write_part(f, str(tmp_path), i) for i, f in enumerate(parts)]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["part-00000.parquet", "part-00001.parquet"]
    meta = parts[0].iloc[:0]
    back = read_part(paths[0], meta)
    pd.testing.assert_frame_equal(back, parts[0])
    assert back["payer_id"].dtype == object and back["submitted"].dtype == "datetime64[s]"
    assert back.index.dtype == object
    reader = _Counting(meta)
    reader.asked.clear()
    ddf = frame_of(paths, reader, meta)
    pd.testing.assert_frame_equal(ddf.compute(scheduler="sync"), pd.concat(parts))
    reader.asked.clear()
    total = ddf[ddf["usable"]]["charge"].sum().compute(scheduler="sync")
    assert total == pytest.approx(pd.concat(parts).query("usable")["charge"].sum())
    assert reader.asked and all(sorted(a) == ["charge", "usable"] for a in reader.asked)


def test_a_rewritten_part_replaces_the_old_one_whole(tmp_path):
    write_part(_frame(6), str(tmp_path), 3)
    path = write_part(_frame(2, 50), str(tmp_path), 3)  # a retried task
    assert [p.name for p in tmp_path.iterdir()] == ["part-00003.parquet"]  # no temporary file left
    assert read_part(path, _frame().iloc[:0]).index.tolist() == ["C50", "C51"]
    Path(path).unlink()
    with pytest.raises(RecoupError, match="part-00003.parquet: cannot read a written partition"):
        read_part(path, _frame().iloc[:0])
    with pytest.raises(RecoupError, match="missing: cannot write partition 4"):
        write_part(_frame(), str(tmp_path / "missing"), 4)


class _Remote:
    cluster = None  # a Client connected to a scheduler's address


class _Local:
    cluster = object()


def test_scratch_is_removed_whatever_happens_and_a_remote_cluster_needs_a_shared_folder(tmp_path, monkeypatch):
    monkeypatch.setenv("RECOUP_HOME", str(tmp_path / "home"))
    monkeypatch.delenv(SCRATCH_ENV, raising=False)
    with scratch(_Local(), "train") as folder:
        write_part(_frame(), folder, 0)
        assert Path(folder).parent == tmp_path / "home" / "dask" / "parts"
        assert Path(folder).stat().st_mode & 0o777 == 0o700  # the workers load pickles from it: nobody else writes
    assert not Path(folder).exists()
    with pytest.raises(ValueError, match="boom"), scratch(_Local()) as folder:
        write_part(_frame(), folder, 0)
        raise ValueError("boom")
    assert not Path(folder).exists()
    with pytest.raises(RecoupError, match=SCRATCH_ENV):
        with scratch(_Remote()):
            pass
    monkeypatch.setenv(SCRATCH_ENV, str(tmp_path / "shared"))
    with scratch(_Remote(), "evaluate") as folder:
        assert Path(folder).parent == tmp_path / "shared" and Path(folder).name.startswith("evaluate-")
    assert list((tmp_path / "shared").iterdir()) == []


def test_a_stream_is_written_whole_or_not_at_all_and_read_back_in_order(tmp_path):
    """The chain's states: items read back in order, one at a time; a write that fails leaves no file (and no
    temporary one), a rewrite replaces the file whole; a missing file is one RecoupError naming it."""
    folder = subfolder(str(tmp_path), "chain")
    with stream_writer(folder, "state-00001.pkl") as put:
        put({"header": 1})
        put(("patient", np.arange(3)))
    items = stream_items(f"{folder}/state-00001.pkl")
    assert next(items) == {"header": 1}
    name, arr = next(items)
    assert name == "patient" and arr.tolist() == [0, 1, 2] and next(items, None) is None
    with pytest.raises(ValueError, match="boom"), stream_writer(folder, "state-00001.pkl") as put:
        put({"header": 2})
        raise ValueError("boom")
    assert sorted(p.name for p in Path(folder).iterdir()) == ["state-00001.pkl"]  # the old one, whole
    assert next(stream_items(f"{folder}/state-00001.pkl")) == {"header": 1}
    with stream_writer(folder, "state-00001.pkl") as put:
        put({"header": 3})
    assert list(stream_items(f"{folder}/state-00001.pkl")) == [{"header": 3}]
    remove(f"{folder}/state-00001.pkl")
    remove(f"{folder}/state-00001.pkl")  # already gone: nothing to do
    with pytest.raises(RecoupError, match="state-00001.pkl"):
        next(stream_items(f"{folder}/state-00001.pkl"))
