"""The import graph: `recoup.cli` imports every command module (no import by string), and the
dependencies go one way (serving never imports training; features imports neither)."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
COMMAND_MODULES = {
    "features.sources.synthetic.generate",
    "features.sources.x12.importer",
    "features.rulebook",
    "training.train",
    "training.evaluate",
    "serving.batch",
    "serving.audit",
    "serving.serve",
    "serving.security",
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
