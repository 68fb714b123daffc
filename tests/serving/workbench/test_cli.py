"""`recoup workbench` commands: migrate, user add (password from the environment), one-line errors."""

from __future__ import annotations

from typer.testing import CliRunner

from recoup.cli import app
from tests.serving.workbench.conftest import PASSWORD


def test_workbench_commands(tmp_path, monkeypatch):
    monkeypatch.setenv("RECOUP_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("RECOUP_DATABASE_URL", f"sqlite:///{tmp_path / 'wb.sqlite'}")
    run = CliRunner().invoke
    r = run(app, ["workbench", "migrate"])
    assert r.exit_code == 0 and "at revision 0002" in r.output
    monkeypatch.setenv("RECOUP_WORKBENCH_PASSWORD", PASSWORD)
    r = run(app, ["workbench", "user", "add", "lena", "--role", "lead"])
    assert r.exit_code == 0 and "user 'lena' (lead) created" in r.output
    for args, env, message in (
        (["workbench", "user", "add", "lena", "--role", "lead"], PASSWORD, "error: a user named 'lena' exists"),
        (["workbench", "user", "add", "bob", "--role", "reviewer"], "short", "error: the password must have 10"),
        (["workbench"], PASSWORD, "error: --data STORE is required"),
        (["workbench", "--data", str(tmp_path / "nope")], PASSWORD, "error: --data"),
        (["workbench", "--data", str(tmp_path)], PASSWORD, "error: no `recoup audit` output found"),
    ):
        monkeypatch.setenv("RECOUP_WORKBENCH_PASSWORD", env)
        r = run(app, args)
        assert r.exit_code == 2, (args, r.output)
        assert r.output.strip().startswith(message) and len(r.output.strip().splitlines()) == 1, r.output
    r = run(app, ["workbench", "user", "add", "bob", "--role", "admin"])
    assert r.exit_code == 2
