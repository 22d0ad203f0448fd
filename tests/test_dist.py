"""The built distributions as a user gets them: the wheel installed into a fresh virtual environment beside torch,
and the sdist unpacked. ``scripts/check_dist.py`` builds them, makes that environment and runs this file (CI runs
it after the full suite); without it these tests are skipped.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import tarfile
import tomllib
import zipfile
from pathlib import Path

import pytest
from test_settings import CLEARED, NO_LOGGERS, files, line_with, settings_files, train_args

import pairhook

ROOT = Path(__file__).resolve().parents[1]
DIST_PYTHON = os.environ.get("PAIRHOOK_DIST_PYTHON")
DIST_DIR = Path(os.environ.get("PAIRHOOK_DIST_DIR", "dist"))
pytestmark = [pytest.mark.dist, pytest.mark.skipif(not DIST_PYTHON, reason="run by scripts/check_dist.py")]


def fresh(args: list[str], cwd: Path, **extra: str) -> str:
    """Run a command of the fresh environment (its bin first on PATH), which cannot see this checkout, offline."""
    bin_dir = str(Path(DIST_PYTHON).parent)
    # PAIRHOOK_REQUIRE_TUNE and _DOCS (set by .ci/run) ask for Ray and MkDocs, which the fresh environment has not
    dropped = (*CLEARED, "PYTHONPATH", "VIRTUAL_ENV", "PAIRHOOK_REQUIRE_TUNE", "PAIRHOOK_REQUIRE_DOCS")
    env = {k: v for k, v in os.environ.items() if k not in dropped}
    env.update(PATH=os.pathsep.join([bin_dir, env.get("PATH", "")]), HOME=str(cwd.parent / "home"),
               PAIRHOOK_OFFLINE="1", **extra)
    for folder in (cwd.parent / "home" / ".config", Path(extra.get("YOLO_CONFIG_DIR", cwd))):
        folder.mkdir(parents=True, exist_ok=True)  # a user's folders exist (else Ultralytics falls back to /tmp)
    out = subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True, timeout=900)
    assert out.returncode == 0, out.stdout[-4000:] + out.stderr[-3000:]
    return out.stdout + out.stderr


def normal(requirement: str) -> tuple[str, frozenset[str]]:
    """``"a<2, >=1"`` -> ``("a", {"<2", ">=1"})``: the metadata may list the specifiers in another order."""
    name, spec = re.match(r"([A-Za-z0-9_.-]+)(.*)", requirement.replace(" ", "")).groups()
    return name.lower(), frozenset(spec.split(","))


def built(pattern: str) -> Path:
    (path,) = DIST_DIR.glob(pattern)
    return path


def test_wheel_holds_the_typed_package_and_its_licence():
    wheel = zipfile.ZipFile(built("pairhook-*.whl"))
    names = wheel.namelist()
    assert "pairhook/py.typed" in names and "pairhook/cli.py" in names
    assert not [n for n in names if n.startswith("tests/")]
    assert any(n.endswith(".dist-info/licenses/LICENSE") for n in names)
    meta = wheel.read(next(n for n in names if n.endswith(".dist-info/METADATA"))).decode()
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert "License-Expression: AGPL-3.0-or-later" in meta and f"Version: {pairhook.__version__}" in meta
    assert f"Requires-Python: {project['requires-python']}" in meta
    required = [line.split(": ", 1)[1] for line in meta.splitlines()
                if line.startswith("Requires-Dist:") and "extra ==" not in line]
    assert sorted(map(normal, required)) == sorted(map(normal, project["dependencies"]))


def test_the_fresh_environment_imports_the_wheel(tmp_path):
    out = fresh([DIST_PYTHON, "-c", "import pairhook, pathlib; p = pathlib.Path(pairhook.__file__).parent; "
                 "print('AT', p, (p / 'py.typed').is_file())"], tmp_path)
    assert "site-packages" in out and str(ROOT) not in out and out.strip().endswith("True")


def test_cli_trains_where_the_users_settings_say(tmp_path, dataset):
    """The done-when of the settings issue, with the installed `pairhook` command."""
    cwd = tmp_path / "work"
    cwd.mkdir()
    cfg, runs = tmp_path / "cfg", tmp_path / "my-runs"
    assert fresh(["pairhook", "--version"], cwd).startswith(f"pairhook {pairhook.__version__} (ultralytics ")
    assert "pairhook's keys:" in fresh(["pairhook", "train", "help"], cwd)
    fresh(["pairhook", "settings", f"runs_dir={runs}", *NO_LOGGERS], cwd, YOLO_CONFIG_DIR=str(cfg))
    (settings,) = settings_files(tmp_path)
    before = files(tmp_path)
    out = fresh(["pairhook", "train", *train_args(dataset)], cwd, YOLO_CONFIG_DIR=str(cfg))
    save_dir = Path(line_with(out, "pairhook train: results in ").rsplit(" ", 1)[1])
    assert save_dir == runs / "detect" / "train" and (save_dir / "weights" / "best.pt").is_file()
    out = fresh(["pairhook", "evaluate", f"model={save_dir / 'weights' / 'best.pt'}", f"data={dataset.data_yaml}",
                 f"pairs={dataset.pairs_json}", "imgsz=64", "batch=4", "plots=False"], cwd, YOLO_CONFIG_DIR=str(cfg))
    assert "pairs/both_detected" in out and f"results in {runs / 'detect' / 'val'}" in out
    after = files(tmp_path)
    assert after[settings] == before[settings] and settings_files(tmp_path) == [settings]
    assert not [p for p in after if p not in before and not p.is_relative_to(runs)]


def test_plugin_example_from_its_wheel(tmp_path):
    """The example plugin's entry point and its tests, with pairhook's fixtures from the installed wheel."""
    cwd = tmp_path / "work"
    cwd.mkdir()
    row = next(line for line in fresh(["pairhook", "plugins"], cwd).splitlines() if line.startswith("pair_js "))
    assert "entry point pair_js (pairhook-plugin-example 0.1.0)" in row
    shutil.copytree(ROOT / "examples" / "pairhook-plugin-example" / "tests", cwd / "tests")
    out = fresh([DIST_PYTHON, "-m", "pytest", "-q", "-p", "no:cacheprovider", "tests"], cwd)
    assert " passed" in out and "failed" not in out


def test_sdist_runs_its_own_tests(tmp_path):
    with tarfile.open(built("pairhook-*.tar.gz")) as tar:
        tar.extractall(tmp_path, filter="data")
    (src,) = tmp_path.iterdir()
    for needed in ("LICENSE", "tests/conftest.py", "docs/writing-a-regularizer.md", "benchmarks/_common.py",
                   "examples/pairhook-plugin-example/pyproject.toml", "pairhook/py.typed", "CHANGELOG.md"):
        assert (src / needed).is_file(), needed
    out = fresh([DIST_PYTHON, "-m", "pytest", "-q", "-p", "no:cacheprovider", "tests/test_layout.py",
                 "tests/test_hookspecs_documented.py", "tests/test_metrics.py", "tests/test_cli.py", "-k",
                 "not train and not demo and not inspect and not evaluate"], src)
    assert " passed" in out and "failed" not in out
