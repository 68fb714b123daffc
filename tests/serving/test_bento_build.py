"""`bentoml build` from the checkout, as a fresh clone runs it (bentofile.yaml; docs/service.md, "The Bento"):
into a BentoML home of its own, with no uv on PATH and no package index (BentoML runs uv: the project's
environment has it), and the Bento it makes holds every module the service imports and the champion model."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
BENTOML = Path(sys.executable).parent / "bentoml"


def _run(args: list[str], env: dict[str, str], cwd: Path = ROOT) -> str:
    r = subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, f"{' '.join(args[:3])} failed:\n{r.stdout[-2000:]}\n{r.stderr[-3000:]}"
    return r.stdout


@pytest.mark.slow
def test_bentoml_build_packs_the_service_code_and_model(trained, tmp_path):
    model_dir = Path(trained["bundle_dir"])  # the champion in the session's store, put there by promotion
    home = tmp_path / "bentoml"
    shutil.copytree(model_dir, home / "models" / model_dir.parent.name / model_dir.name)
    (home / "models" / model_dir.parent.name / "latest").write_text(model_dir.name)
    env = {
        "HOME": str(tmp_path),
        "PATH": "/usr/bin:/bin",  # no .tools/bin, no .venv/bin: BentoML must find uv in the environment itself
        "PIP_NO_INDEX": "1",  # and must not install anything from PyPI
        "BENTOML_HOME": str(home),
        "BENTOML_DO_NOT_TRACK": "true",
        "DO_NOT_TRACK": "1",
        "RECOUP_HOME": str(tmp_path / "work"),
    }
    tag = _run([str(BENTOML), "build", "--output", "tag"], env).strip().splitlines()[-1]
    tag = tag.removeprefix("__tag__:")
    name, version = tag.split(":")
    assert name == "recoup"

    # the model: the store's model.yaml names its loader and the Scorer's method
    model = json.loads(_run([str(BENTOML), "models", "get", f"recoup-risk:{model_dir.name}", "-o", "json"], env))
    assert model["module"] == "serving.model_store" and "score_claims" in model["signatures"]

    bento = home / "bentos" / name / version
    info = (bento / "bento.yaml").read_text()
    assert f"recoup-risk:{model_dir.name}" in info and "serving.model_store" in info
    # BentoML 1.4 keeps the model in the store and refers to it; `bentoml containerize` / `export` add it
    assert (home / "models" / "recoup-risk" / model_dir.name / "model.yaml").is_file()
    # every module of the packages the service imports (serving never imports training), the rulebook's data,
    # the contract served at /contract; nothing of the tests, the working folders or the environment
    src = bento / "src"
    packed = {p.relative_to(src).as_posix() for p in src.rglob("*") if p.is_file()}
    tracked = subprocess.run(
        ["git", "ls-files", "features", "serving", "docs/contract.md"], cwd=ROOT, capture_output=True, text=True
    ).stdout.split()
    wanted = {p for p in tracked if p.endswith((".py", ".parquet", ".json", ".yaml", ".md")) and (ROOT / p).is_file()}
    # the audit workbench is its own application (its dependencies are not the service's): not in the Bento
    workbench = {p for p in wanted if p.startswith("serving/workbench/")}
    assert workbench and not workbench & packed, sorted(workbench & packed)[:10]
    wanted -= workbench
    assert wanted - packed == set(), sorted(wanted - packed)[:10]
    assert not any(p.startswith(("tests/", "training/", "work/", ".venv/", "notebooks/")) for p in packed)
    size = _size(bento)
    assert size < 64 * 2**20, f"the Bento is {size / 2**20:.1f} MiB"


def _size(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())


def test_the_bentofile_names_the_service_and_its_packages():
    """Fast: bentofile.yaml serves serving.service:RecoupService and pins what the Bento installs to the lock."""
    import yaml

    spec = yaml.safe_load((ROOT / "bentofile.yaml").read_text())
    assert spec["service"] == "serving.service:RecoupService"
    from packaging.markers import Marker

    python = str(spec["docker"]["python_version"])  # the image's Python: the lock's pins for it
    where = {"python_version": python, "python_full_version": f"{python}.0", "sys_platform": "linux"}
    lock = {}
    for line in (ROOT / "requirements.lock").read_text().splitlines():
        if "==" in line and not line.lstrip().startswith("#"):
            req, _, marker = line.partition(";")
            if not marker.strip() or Marker(marker.strip()).evaluate(where):
                pkg, pin = req.split("==")
                lock[pkg.strip()] = pin.strip()
    for req in spec["python"]["packages"]:
        pkg, pin = req.split("==")
        assert lock.get(pkg) == pin, f"bentofile.yaml pins {req}, requirements.lock has {lock.get(pkg)}"


def test_the_store_model_loads_through_the_module_it_names(trained):
    """``bentoml.models.get(tag).load_model()`` imports model.yaml's ``module`` and calls its ``load_model``."""
    import bentoml

    from serving.scorer import Scorer

    model = bentoml.models.get(f"recoup-risk:{Path(trained['bundle_dir']).name}")
    scorer = model.load_model()
    assert isinstance(scorer, Scorer) and scorer.model_version == model.info.labels["mlflow_version"]
