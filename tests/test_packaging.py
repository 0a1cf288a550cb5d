"""``pip install .`` gives a working tool: the wheel holds every package and the shipped
spaces and study configs, and the installed code finds them without the source tree."""

from __future__ import annotations

import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
import tomllib
import yaml

from tests.helpers import save_tiny_model

ROOT = Path(__file__).resolve().parents[1]


def test_pyproject_lists_every_package() -> None:
    listed = set(tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"])
    found = {".".join(p.parent.relative_to(ROOT).parts) for p in (ROOT / "allocsearch").rglob("__init__.py")}
    assert listed == found | {"allocsearch.spaces", "allocsearch.studies"}


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The wheel of this checkout, unpacked: what ``pip install .`` puts in site-packages."""
    out = tmp_path_factory.mktemp("wheel")
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--no-build-isolation",
                    str(ROOT), "-w", str(out)], check=True, cwd=out)
    (wheel,) = out.glob("allocsearch-*.whl")
    site = out / "site"
    with zipfile.ZipFile(wheel) as zf:
        zf.extractall(site)
    return site


def test_wheel_ships_the_spaces_and_study_configs(installed: Path) -> None:
    for kind in ("spaces", "studies"):
        shipped = sorted(p.name for p in (installed / "allocsearch" / kind).glob("*.yaml"))
        assert shipped == sorted(p.name for p in (ROOT / kind).glob("*.yaml")) and shipped


def _run_installed(installed: Path, cwd: Path, argv: list[str]) -> subprocess.CompletedProcess[str]:
    """``argv`` run by the unpacked wheel's code (it comes first on the path), away from the
    source tree."""
    env = os.environ | {"PYTHONPATH": str(installed), "OMP_NUM_THREADS": "1",
                        "ALLOCSEARCH_CACHE": str(cwd / "cache")}
    return subprocess.run([sys.executable, *argv], cwd=cwd, env=env, text=True, capture_output=True)


def test_installed_code_finds_shipped_spaces_and_configs(installed: Path, tmp_path: Path) -> None:
    probe = ("import allocsearch; from allocsearch.search import StudyConfig, find_space; "
             "print(allocsearch.__file__); print(find_space('levels').source); "
             "c = StudyConfig.load('smollm2-70'); print(c.source); print(c.output)")
    done = _run_installed(installed, tmp_path, ["-c", probe])
    assert done.returncode == 0, done.stderr
    module, space, config, output = done.stdout.split()
    for path in (module, space, config):
        assert path.startswith(str(installed)), path
    assert output == str(tmp_path / "studies" / "smollm2-70")


def test_installed_cli_runs_a_study_on_a_shipped_space(installed: Path, tmp_path: Path) -> None:
    model = save_tiny_model(tmp_path / "tiny")
    cfg = {"name": "pkg", "model": str(model), "device": "cpu", "space": "blocks", "target": 0.5,
           "data": {"nsamples": 2, "seqlen": 32}, "evaluator": {"seqlen": 32, "fidelities": [64]},
           "sampler": "random", "n_trials": 3, "warm_start": [{"method": "uniform"}]}
    (tmp_path / "pkg.yaml").write_text(yaml.safe_dump(cfg))
    done = _run_installed(installed, tmp_path, ["-m", "allocsearch", "search", "pkg.yaml", "--no-verify",
                                                "--quiet"])
    assert done.returncode == 0, done.stderr
    assert "study pkg: 3 complete" in done.stdout
    assert (tmp_path / "pkg" / "study.db").is_file() and (tmp_path / "pkg" / "best_plan.json").is_file()
