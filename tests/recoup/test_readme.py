"""Every `recoup` command of the README's bash blocks runs as written after the demo (`make demo` = `recoup
demo`): a small demo into a temporary working folder (./work, the default RECOUP_HOME), then each command in
order from that folder, with smaller sizes (fewer claims, fewer trees) appended. Commands that start a server
are listed in SKIPPED with the reason; the test fails when the README has a command it neither runs nor skips."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest

from tests.recoup.test_demo import check_log, run_recoup

ROOT = Path(__file__).resolve().parents[2]
README = ROOT / "README.md"
PREFIX = ".venv/bin/recoup"

#: README commands not run, by their first words, with the reason
SKIPPED = {
    "recoup serve": "starts the service (a server on a port; tests/serving test it)",
    "recoup workbench": "starts the workbench (a server) or asks for a password; tests/serving/workbench test both",
}
#: what the README's other commands are (not recoup's): not run here, with the reason
OTHERS = {
    "make": "sets up the environment / runs the demo itself (the demo is run below)",
    "curl": "needs the running service",
    ".venv/bin/mlflow": "MLflow's UI server",
    ".venv/bin/jupyter": "JupyterLab's server",
}
#: appended to keep the test small: (command, options)
SMALLER = {"train": ["--n-estimators", "30"], "backtest": ["--n-estimators", "30"], "generate": ["--claims", "3000"]}


def readme_commands(text: str) -> list[str]:
    """The commands of the ```bash blocks: continuation lines joined, comments dropped."""
    out = []
    for block in re.findall(r"```bash\n(.*?)```", text, re.S):
        for line in block.replace("\\\n", " ").splitlines():
            words = shlex.split(line, comments=True)
            if words:
                out.append(shlex.join(words))
    return out


def test_every_readme_command_is_run_or_skipped_with_a_reason():
    commands = readme_commands(README.read_text())
    recoup = [c for c in commands if c.startswith(PREFIX + " ")]
    assert len(recoup) >= 12, recoup
    unknown = [c for c in commands if not c.startswith(PREFIX + " ") and not c.startswith(tuple(OTHERS))]
    assert not unknown, unknown
    for skipped in SKIPPED:  # each skip names a command the README has
        assert any(c.startswith(".venv/bin/" + skipped) for c in recoup), skipped
    assert "work/hist " not in README.read_text()  # the old folder nothing creates


@pytest.mark.slow
def test_readme_commands_work_after_the_demo(tmp_path):
    (tmp_path / "tests").symlink_to(ROOT / "tests")  # the README's X12 samples, relative to the repository
    home = tmp_path / "work"
    demo = run_recoup(["demo", "--claims", "6000", "--seed", "5", "--no-serve"], home, tmp_path)
    assert demo.returncode == 0, demo.stderr[-3000:]
    lines = check_log(demo.stderr)
    assert sum("[recoup.demo] step " in line for line in lines) == 7  # 3 steps started and done, 1 skipped
    assert (home / "demo" / "history" / "claims.csv").exists()
    # the demo's second report reviews a window whose outcomes are known: it has a backtest (#16)
    report = (home / "demo" / "audit-backtest" / "report.html").read_text(encoding="utf-8")
    assert "id='backtest'" in report and "id='no-backtest'" not in report
    ran = []
    for command in readme_commands(README.read_text()):
        if not command.startswith(PREFIX + " ") or any(command.startswith(".venv/bin/" + s) for s in SKIPPED):
            continue
        args = shlex.split(command)[1:]
        res = run_recoup([*args, *SMALLER.get(args[0], [])], home, tmp_path)
        assert res.returncode == 0, f"{command}\n{res.stdout[-2000:]}\n{res.stderr[-3000:]}"
        check_log(res.stderr, only_log_lines=args[0] == "train")
        ran.append(args[0])
    assert {"train", "evaluate", "monitor", "backtest", "ingest", "store", "generate", "score", "audit"} <= set(ran)
    assert (home / "audit" / "report.html").exists() and (home / "scores.parquet").exists()


def test_a_data_folder_that_does_not_exist_is_one_line(tmp_path):
    res = run_recoup(["train", "--data", "work/nothing"], tmp_path / "work", tmp_path)
    assert res.returncode == 2
    assert res.stderr.strip().splitlines()[-1] == (
        "error: work/nothing: does not exist; expected a claims history directory (`recoup generate`, `recoup demo`) "
        "or a claims store (`recoup ingest`)"
    )
    assert "Traceback" not in res.stderr


def test_jupyterlab_is_the_notebook_extra_installed_by_make_setup():
    """README: JupyterLab is the `notebook` extra; `make setup` installs every extra of uv.lock, `make setup-pip`
    requirements.lock: both locks hold it, at a version within the extra's bounds."""
    import tomllib

    from packaging.requirements import Requirement

    extras = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    (req,) = [Requirement(r) for r in extras["notebook"] if r.startswith("jupyterlab")]
    assert {s.operator for s in req.specifier} == {">=", "<"}  # bounded both ways
    assert "--all-extras" in (ROOT / "Makefile").read_text()
    pins = re.findall(r"^jupyterlab==(\S+)", (ROOT / "requirements.lock").read_text(), re.M)
    locked = re.findall(r'^name = "jupyterlab"\nversion = "([^"]+)"', (ROOT / "uv.lock").read_text(), re.M)
    assert pins == locked and len(pins) == 1 and req.specifier.contains(pins[0])
    assert ".venv/bin/jupyter lab notebooks/" in README.read_text()
