"""What a saved bundle folder holds (no heavy imports: the service reads this before it loads a model)."""

from __future__ import annotations

from pathlib import Path

BUNDLE_FILES = ("meta.json", "spec.json", "calibrator.json")


def bundle_problem(directory: str | Path) -> str | None:
    """Why ``directory`` is not a saved bundle (``"no likelihood model"``, ``"no spec.json"``, ...), or None."""
    d = Path(directory)
    if not d.is_dir():
        return "not a folder"
    if not ((d / "likelihood.json").is_file() or (d / "likelihood.txt").is_file()):
        return "no likelihood model"
    missing = [f for f in BUNDLE_FILES if not (d / f).is_file()]
    return f"no {missing[0]}" if missing else None
