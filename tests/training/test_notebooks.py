"""The notebooks run top to bottom on small generated data and are stored without outputs."""

from __future__ import annotations

from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

NOTEBOOKS = sorted((Path(__file__).resolve().parents[2] / "notebooks").glob("*.ipynb"))


def test_notebooks_are_stored_without_outputs():
    assert len(NOTEBOOKS) >= 2
    for path in NOTEBOOKS:
        nb = nbformat.read(path, as_version=4)
        for cell in nb.cells:
            if cell.cell_type == "code":
                assert not cell.outputs and cell.execution_count is None, f"{path.name} has stored outputs"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_executes_from_its_folder_and_shows_its_plots(path, trained, monkeypatch):
    """Started in notebooks/ (as Jupyter does), with the kernel's own inline backend: every notebook runs and
    its plots are in the outputs (a backend switched to Agg at import would leave them out)."""
    monkeypatch.setenv("RECOUP_DATA_DIR", str(trained["data_dir"]))
    monkeypatch.setenv("RECOUP_RUN_ID", trained["info"]["run_id"])
    monkeypatch.delenv("MPLBACKEND", raising=False)
    nb = nbformat.read(path, as_version=4)
    NotebookClient(nb, timeout=300, kernel_name="python3", resources={"metadata": {"path": str(path.parent)}}).execute()
    outputs = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs]
    assert not [o for o in outputs if o.output_type == "error"]
    images = [
        o for o in outputs if o.output_type in ("display_data", "execute_result") and "image/png" in o.get("data", {})
    ]
    assert len(images) >= 3, f"{path.name}: {len(images)} plot(s) in the outputs"
