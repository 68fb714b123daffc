"""The import graph: `recoup.cli` imports every command module (no import by string), and the
dependencies go one way (serving never imports training; features imports neither)."""

from __future__ import annotations

import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
COMMAND_MODULES = {
    "features.sources.synthetic.generate",
    "features.sources.x12.importer",
    "features.store.ingest",
    "features.store.info",
    "features.rulebook",
    "training.train",
    "training.evaluate",
    "training.backtest",
    "training.monitor",
    "serving.batch",
    "serving.audit",
    "serving.serve",
    "serving.security",
    "serving.workbench.cli",
    "recoup.demo",
}


def imports(path: Path) -> set[str]:
    """Every module an ``import`` statement of ``path`` names, at any depth (functions included)."""
    out: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            out.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            out.add(node.module)
    return out


def test_cli_imports_every_command_module_and_none_by_string():
    cli = ROOT / "recoup" / "cli.py"
    assert COMMAND_MODULES <= imports(cli)
    assert "importlib" not in imports(cli) and "import_module" not in cli.read_text()


def test_dependencies_go_one_way():
    for package, forbidden in (
        ("serving", ("training", "recoup")),
        ("features", ("training", "serving", "recoup")),
        ("training", ("serving", "recoup")),
    ):
        for path in sorted((ROOT / package).rglob("*.py")):
            bad = {m for m in imports(path) if m.split(".")[0] in forbidden}
            assert not bad, f"{path.relative_to(ROOT)} imports {sorted(bad)}"


def test_cli_docstring_names_each_command_and_the_function_that_runs_it():
    """The table in recoup/cli.py's docstring: every command of the app, each with a function that exists in
    the named module and that the command calls."""
    import typer.main

    from recoup import cli

    rows = {}  # "    keys create|list|revoke  serving.security.keys_create_cli, keys_list_cli, keys_revoke_cli"
    for m in re.finditer(r"^    (\S+(?: \S+)?)\s{2,}(\S.*)$", cli.__doc__ or "", re.M):
        rows[m.group(1)] = [t.strip() for t in m.group(2).split(",")]
    group = typer.main.get_group(cli.app)
    names = set()
    for name, cmd in group.commands.items():
        subs = getattr(cmd, "commands", None)
        names.add(f"{name} {'|'.join(subs)}" if subs else name)
    assert set(rows) == names
    source = (ROOT / "recoup" / "cli.py").read_text()
    for command, targets in rows.items():
        module, first = targets[0].rsplit(".", 1)
        functions = [first, *targets[1:]]
        path = ROOT / (module.replace(".", "/") + ".py")
        defined = {n.name for n in ast.walk(ast.parse(path.read_text())) if isinstance(n, ast.FunctionDef)}
        for fn in functions:
            assert fn in defined, f"{command}: {module}.{fn} does not exist"
            assert f"{fn}(" in source, f"{command}: recoup/cli.py never calls {fn}"


def test_no_module_imports_another_modules_private_names():
    """A helper used by two modules is public (issue #12): no ``from x import _name`` between our packages."""
    ours = {"features", "serving", "training", "recoup"}
    bad = []
    for package in sorted(ours):
        for path in sorted((ROOT / package).rglob("*.py")):
            for node in ast.walk(ast.parse(path.read_text())):
                if isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] in ours:
                    bad += [f"{path.relative_to(ROOT)}: {node.module}.{a.name}" for a in node.names if a.name[0] == "_"]
    assert not bad, bad


#: wiring that dispatches input files to their source, like a command (the store's `recoup ingest`)
SOURCE_DISPATCH = {"features/store/sources.py"}


def test_sources_are_not_imported_by_training_or_serving():
    """The synthetic generator and the X12 importer are data sources for commands, not shared code: only the
    commands and the store's source dispatch import them (the store reads any store without them)."""
    packages = ("training", "serving", "features/families", "features/engine", "features/model", "features/store")
    for package in packages:
        for path in sorted((ROOT / package).rglob("*.py")):
            if str(path.relative_to(ROOT)) in SOURCE_DISPATCH:
                continue
            bad = {m for m in imports(path) if m.startswith("features.sources")}
            assert not bad, f"{path.relative_to(ROOT)} imports {sorted(bad)}"
