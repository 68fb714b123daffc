"""The `recoup` command: help, clear one-line errors (never a stack trace), and the demo end to end."""

from __future__ import annotations

import json
import os
from pathlib import Path

from typer.testing import CliRunner

from recoup.cli import app

runner = CliRunner()
X12_SAMPLE = Path(__file__).resolve().parents[1] / "data" / "x12" / "pyx12" / "embedded_835id.txt"
COMMANDS = ("generate", "import-x12", "train", "evaluate", "monitor", "score", "audit", "serve", "demo")


def test_help_lists_the_contract_commands():
    res = runner.invoke(app, ["--help"])
    assert res.exit_code == 0
    for c in COMMANDS:
        assert c in res.output
    for c in COMMANDS:
        assert runner.invoke(app, [c, "--help"]).exit_code == 0


def test_bad_input_is_one_line_reason_and_nonzero_exit(tmp_path, monkeypatch):
    monkeypatch.setenv("RECOUP_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("BENTOML_HOME", str(tmp_path / "home" / "bentoml"))
    res = runner.invoke(app, ["train", "--data", str(tmp_path / "missing")])
    assert res.exit_code == 2
    assert "error:" in res.output and "Traceback" not in res.output
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "claims.csv").write_text("claim_id,patient_id\nC1,P1\n")
    (bad / "claim_lines.csv").write_text("claim_id,line_number\nC1,1\n")
    res = runner.invoke(app, ["train", "--data", str(bad)])
    assert res.exit_code == 2 and "Traceback" not in res.output
    assert "claims.csv" in res.output and "billing_npi" in res.output


def test_score_bad_data_with_a_model_names_the_file(trained, tmp_path, monkeypatch):
    """A model is there (RECOUP_BUNDLE_DIR): the reason given is the contract problems of the data."""
    monkeypatch.setenv("RECOUP_BUNDLE_DIR", str(trained["bundle_dir"]))
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "claims.csv").write_text("claim_id,patient_id\nC1,P1\n")
    (bad / "claim_lines.csv").write_text("claim_id,line_number\nC1,1\n")
    res = runner.invoke(app, ["score", "--data", str(bad), "--out", str(tmp_path / "s.csv")])
    assert res.exit_code == 2 and "Traceback" not in res.output, res.output
    assert res.output.startswith("error: ") and "recoup train" not in res.output
    assert "claims.csv" in res.output and "billing_npi" in res.output
    assert not (tmp_path / "s.csv").exists()


def test_score_without_a_model_says_to_train(small_history_dir, tmp_path):
    """No model anywhere (a fresh process: BentoML binds its store once per process, so an earlier test's
    store cannot leak in): one line saying to run `recoup train`, exit 2."""
    import subprocess
    import sys

    root = Path(__file__).resolve().parents[2]
    env = {k: v for k, v in os.environ.items() if k != "RECOUP_BUNDLE_DIR"}
    # an empty file store: the same "no champion" answer as an empty SQLite store, without its migrations
    env.update(
        RECOUP_HOME=str(tmp_path / "home"),
        BENTOML_HOME=str(tmp_path / "home" / "bentoml"),
        MLFLOW_TRACKING_URI=(tmp_path / "mlruns").as_uri(),
        PYTHONPATH=str(root),
        PYTHONDONTWRITEBYTECODE="1",
    )
    res = subprocess.run(
        [
            sys.executable,
            "-m",
            "recoup.cli",
            "score",
            "--data",
            str(small_history_dir),
            "--out",
            str(tmp_path / "s.csv"),
        ],
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
        cwd=tmp_path,
    )
    assert res.returncode == 2, res.stderr
    assert "Traceback" not in res.stderr
    err = [line for line in res.stderr.splitlines() if line.startswith("error:")]
    assert len(err) == 1 and "recoup train" in err[0], res.stderr
    assert not (tmp_path / "s.csv").exists()


def test_generate_writes_a_valid_history(tmp_path):
    from features.contract import load_history

    out = tmp_path / "h"
    res = runner.invoke(app, ["generate", "--out", str(out), "--claims", "500", "--seed", "3"])
    assert res.exit_code == 0, res.output
    h = load_history(out)
    assert 450 <= len(h.claims) <= 550
    assert (out / "oracle.csv").exists()


def test_demo_end_to_end_without_serving(tmp_path):
    """In a fresh process with its own homes: MLflow's tracking URI and BentoML's store are bound per
    process, so an in-process demo would promote its model into the session's stores."""
    import subprocess
    import sys

    root = Path(__file__).resolve().parents[2]
    env = {k: v for k, v in os.environ.items() if k not in ("RECOUP_BUNDLE_DIR", "MLFLOW_TRACKING_URI")}
    env.update(
        RECOUP_HOME=str(tmp_path / "home"),
        BENTOML_HOME=str(tmp_path / "home" / "bentoml"),
        PYTHONPATH=str(root),
        PYTHONDONTWRITEBYTECODE="1",
    )
    res = subprocess.run(
        [sys.executable, "-m", "recoup.cli", "demo", "--claims", "4000", "--seed", "5", "--no-serve"],
        capture_output=True,
        text=True,
        timeout=600,
        env=env,
        cwd=tmp_path,
    )
    assert res.returncode == 0, res.stderr[-3000:]
    demo = tmp_path / "home" / "demo"
    assert (demo / "audit" / "report.html").exists() and (demo / "audit" / "worklist.csv").exists()
    example = json.loads((demo / "example_claim.json").read_text())
    assert example["claim"]["lines"]
    assert "curl" in res.stdout + res.stderr


# ------------------------------------------------------------------------------------------ outputs written safely
def _snapshot(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir())}


def _one_error_line(res) -> str:
    assert res.exit_code == 2, res.output
    assert "Traceback" not in res.output
    lines = [line for line in res.output.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), res.output
    return lines[0]


def test_unwritable_out_is_one_line(tmp_path):
    (tmp_path / "afile").write_text("x")
    for cmd in (["generate", "--claims", "100"], ["import-x12", str(X12_SAMPLE)]):
        res = runner.invoke(app, [*cmd, "--out", str(tmp_path / "afile" / "h")])
        assert "is a file, not a folder" in _one_error_line(res)


def test_generate_refuses_a_used_folder_and_replaces_its_own_output_whole(tmp_path):
    out = tmp_path / "h"
    out.mkdir()
    (out / "claims.csv").write_text("claim_id\nMINE\n")
    (out / "coverage.parquet").write_bytes(b"not yours")
    before = _snapshot(out)
    line = _one_error_line(runner.invoke(app, ["generate", "--out", str(out), "--claims", "100"]))
    assert str(out) in line and "--overwrite" in line
    assert _snapshot(out) == before
    # --overwrite: replaced whole, nothing of the old folder is left to mix into the new history
    res = runner.invoke(app, ["generate", "--out", str(out), "--claims", "100", "--format", "parquet", "--overwrite"])
    assert res.exit_code == 0, res.output
    assert "claims.csv" not in os.listdir(out) and (out / "claims.parquet").exists()
    # its own earlier output is replaced without --overwrite, in another format: no stale file
    res = runner.invoke(app, ["generate", "--out", str(out), "--claims", "100", "--seed", "9"])
    assert res.exit_code == 0, res.output
    assert not any(name.endswith(".parquet") for name in os.listdir(out))
    assert [p.name for p in tmp_path.iterdir()] == ["h"]  # no temporary folder left
    from features.contract import load_history

    assert len(load_history(out).claims) > 0


def test_generate_into_a_symlink_is_refused(tmp_path):
    real = tmp_path / "real"
    assert runner.invoke(app, ["generate", "--out", str(real), "--claims", "100"]).exit_code == 0
    before = _snapshot(real)
    link = tmp_path / "link"
    link.symlink_to(real, target_is_directory=True)
    line = _one_error_line(runner.invoke(app, ["generate", "--out", str(link), "--claims", "100", "--overwrite"]))
    assert "symbolic link" in line
    assert _snapshot(real) == before and link.is_symlink()


def test_generate_on_a_full_disk_keeps_the_old_history(tmp_path):
    """A write the kernel refuses midway (file size limit, as ENOSPC on a full disk) leaves the earlier
    output exactly as it was, no temporary folder, and one line naming the file."""
    import subprocess
    import sys
    import textwrap

    out = tmp_path / "h"
    assert runner.invoke(app, ["generate", "--out", str(out), "--claims", "100"]).exit_code == 0
    before = _snapshot(out)
    code = textwrap.dedent(f"""
        import resource, signal, sys
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (20_000, 20_000))
        from recoup.cli import app
        sys.argv = ["recoup", "generate", "--out", {str(out)!r}, "--claims", "500", "--seed", "4"]
        app()
    """)
    root = Path(__file__).resolve().parents[2]
    res = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "PYTHONPATH": str(root), "PYTHONDONTWRITEBYTECODE": "1"},
    )
    assert res.returncode == 2, res.stderr
    err = [line for line in res.stderr.splitlines() if line.startswith("error:")]
    assert err == [f"error: cannot write {out / 'claims.csv'}: File too large"], res.stderr
    assert "Traceback" not in res.stderr
    assert _snapshot(out) == before
    assert [p.name for p in tmp_path.iterdir()] == ["h"]


def test_import_x12_is_ingest_into_a_store_and_refuses_a_used_folder(tmp_path):
    from features.contract import load_history

    X12_PAIR = [str(X12_SAMPLE), str(X12_SAMPLE.parents[1] / "badx12" / "X222-ambulance.edi")]
    out = tmp_path / "h"
    assert runner.invoke(app, ["generate", "--out", str(out), "--claims", "100"]).exit_code == 0
    before = _snapshot(out)
    line = _one_error_line(runner.invoke(app, ["import-x12", *X12_PAIR, "--out", str(out)]))
    assert "not a claims store" in line and "--overwrite" in line
    assert _snapshot(out) == before
    res = runner.invoke(app, ["import-x12", *X12_PAIR, "--out", str(out), "--overwrite"])
    assert res.exit_code == 0, res.output
    assert not (out / "oracle.csv").exists() and (out / "manifest.sqlite").is_file()
    store = tmp_path / "s"
    assert runner.invoke(app, ["ingest", *X12_PAIR, "--into", str(store)]).exit_code == 0
    assert_frame_equal_histories(load_history(out), load_history(store))
    res = runner.invoke(app, ["import-x12", *X12_PAIR, "--out", str(out)])  # a store: appended to
    assert res.exit_code == 0 and "already ingested" in res.output, res.output
    assert_frame_equal_histories(load_history(out), load_history(store))


def assert_frame_equal_histories(a, b) -> None:
    import pandas as pd

    for name, df in a.tables().items():
        other = b.tables()[name]
        assert (df is None) == (other is None), name
        if df is not None:
            pd.testing.assert_frame_equal(df.reset_index(drop=True), other.reset_index(drop=True), obj=name)


def test_history_with_a_table_in_two_forms_stops(tmp_path, monkeypatch):
    monkeypatch.setenv("RECOUP_HOME", str(tmp_path / "home"))
    out = tmp_path / "h"
    assert runner.invoke(app, ["generate", "--out", str(out), "--claims", "100"]).exit_code == 0
    import pandas as pd

    pd.read_csv(out / "claims.csv", dtype=str).to_parquet(out / "claims.parquet")
    line = _one_error_line(runner.invoke(app, ["train", "--data", str(out)]))
    assert "claims.parquet and claims.csv" in line


def test_generate_killed_while_writing_leaves_old_or_new_never_a_mix(tmp_path):
    """kill -9 once the new folder is being written: DIR is the old output or the whole new one."""
    import signal
    import subprocess
    import sys
    import time

    out = tmp_path / "h"
    assert runner.invoke(app, ["generate", "--out", str(out), "--claims", "100"]).exit_code == 0
    before = _snapshot(out)
    root = Path(__file__).resolve().parents[2]
    proc = subprocess.Popen(
        [sys.executable, "-m", "recoup.cli", "generate", "--out", str(out), "--claims", "20000", "--seed", "4"],
        cwd=root,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env={**os.environ, "PYTHONPATH": str(root)},
    )
    try:
        while proc.poll() is None and not any(p.name.startswith(".h.tmp-") for p in tmp_path.iterdir()):
            time.sleep(0.005)  # until the new folder exists (the history is being written into it)
        proc.send_signal(signal.SIGKILL)
    finally:
        proc.wait()
    after = _snapshot(out)
    print("killed while writing" if after == before else "killed after the swap")
    if after != before:  # the run got as far as the swap: the new output, whole
        import json

        from features.contract import load_history

        listed = json.loads(after[".recoup-output.json"])["files"]
        assert sorted(listed) == sorted(n for n in after if n != ".recoup-output.json")
        assert len(load_history(out).claims) > 15000


def test_generate_world_choice_matches_the_generator_and_records_the_world(tmp_path):
    from features.sources.synthetic.worlds import WORLDS
    from recoup.cli import _World

    assert [w.value for w in _World] == list(WORLDS)
    out = tmp_path / "w"
    res = runner.invoke(app, ["generate", "--out", str(out), "--claims", "800", "--world", "audit-program"])
    assert res.exit_code == 0, res.output
    assert json.loads((out / "world.json").read_text())["world"] == "audit-program"
    res = runner.invoke(app, ["generate", "--out", str(tmp_path / "x"), "--claims", "800", "--world", "utopia"])
    assert res.exit_code == 2 and "utopia" in res.output


def test_version_and_choices_and_date_formats_in_help():
    from importlib.metadata import version

    res = runner.invoke(app, ["--version"])
    assert res.exit_code == 0 and res.output.strip() == f"recoup {version('recoup')}"
    res = runner.invoke(app, ["generate", "--out", "x", "--format", "xlsx"], terminal_width=200)
    flat = " ".join(res.output.replace("│", " ").split())
    assert res.exit_code == 2 and "Traceback" not in res.output and "'xlsx' is not one of 'csv', 'parquet'" in flat
    for cmd in ("evaluate", "score", "audit", "monitor"):
        text = " ".join(runner.invoke(app, [cmd, "--help"], terminal_width=200).output.split())
        assert "--since" in text and "YYYY-MM-DD" in text, cmd
    text = " ".join(runner.invoke(app, ["train", "--help"]).output.replace("│", " ").split())
    assert "label: recouped within this many days after payment" in text
