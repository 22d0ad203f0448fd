"""examples/pairhook-plugin-example, installed as a user would: found by entry point, trained with, tested.

pairhook and the example are built with pip into a temporary ``--target`` folder (from copies, so the checkout gets
no build artefacts) and used from subprocesses whose only pairhook is that installed copy, with its entry points:
``pairhook`` for the regularizer, ``pytest11`` for the fixtures.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = ROOT / "examples" / "pairhook-plugin-example"
ARTEFACTS = shutil.ignore_patterns("build", "dist", "*.egg-info", "__pycache__", ".pytest_cache", "runs")


@pytest.fixture(scope="module")
def site(tmp_path_factory) -> Path:
    """A folder with pairhook and pairhook-plugin-example installed in it (no dependencies: the venv has them)."""
    tmp = tmp_path_factory.mktemp("plugin-example")
    src = tmp / "pairhook-src"
    src.mkdir()
    for name in ("pyproject.toml", "README.md", "LICENSE"):
        shutil.copy(ROOT / name, src / name)
    shutil.copytree(ROOT / "pairhook", src / "pairhook", ignore=ARTEFACTS)
    shutil.copytree(EXAMPLE, tmp / "example-src", ignore=ARTEFACTS)
    target = tmp / "site"
    out = subprocess.run(
        [sys.executable, "-m", "pip", "install", "--no-deps", "--no-build-isolation", "--no-index", "--quiet",
         "--disable-pip-version-check", "--target", str(target), str(src), str(tmp / "example-src")],
        capture_output=True, text=True, timeout=300, cwd=tmp,
    )
    assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-3000:]
    return target


def run(site: Path, args: list[str], cwd: Path, **env: str) -> subprocess.CompletedProcess:
    """``python args`` seeing only the installed copies (not this checkout), offline."""
    base = {k: v for k, v in os.environ.items() if k not in ("PAIRHOOK_DISABLE_ENTRYPOINTS", "PYTEST_ADDOPTS")}
    out = subprocess.run([sys.executable, *args], cwd=cwd, capture_output=True, text=True, timeout=600,
                         env={**base, **env,
                              "PYTHONPATH": os.pathsep.join([str(site), os.environ.get("PYTHONPATH", "")])})
    return out


PROBE = """
from pairhook.offline import setup_offline
setup_offline()
import pairhook
from ultralytics import YOLO

print("pairhook from", pairhook.__file__)
model = YOLO("yolov8n.yaml")
try:
    handle = pairhook.install(model, regularizers={"pair_js": {"T": 2.0}})
except ValueError as e:
    print("refused:", e)
else:
    print("installed:", [(r.name, r.loss_name) for r in handle.active], pairhook.registry()["pair_js"].source)
"""


def test_found_through_entry_point_and_hidden_when_discovery_is_off(site, tmp_path):
    found = run(site, ["-c", PROBE], tmp_path)
    assert found.returncode == 0, found.stderr[-3000:]
    assert f"pairhook from {site}" in found.stdout  # the installed copy, not the checkout
    assert "installed: [('pair_js', 'js_loss')] entry point pair_js (pairhook-plugin-example 0.1.0)" in found.stdout
    hidden = run(site, ["-c", PROBE], tmp_path, PAIRHOOK_DISABLE_ENTRYPOINTS="1")
    assert hidden.returncode == 0, hidden.stderr[-3000:]
    assert ("refused: unknown regularizer 'pair_js'; available: pair_consistency, pair_feature, pair_quality, "
            "symmetric_kl") in hidden.stdout
    listed = run(site, ["-m", "pairhook.cli", "plugins"], tmp_path)
    assert listed.returncode == 0, listed.stderr[-3000:]
    row = next(line for line in listed.stdout.splitlines() if line.startswith("pair_js "))
    assert row.split() == ["pair_js", "js_loss", "entry", "point", "pair_js", "(pairhook-plugin-example", "0.1.0)",
                           "weight=1.0", "anchor='best'", "T=1.0"]


def test_example_tests_pass_with_the_shipped_fixtures(site, tmp_path):
    """The example's own tests, run as its author would: fixtures through pairhook's pytest11 entry point.

    They include a tiny training with ``pair_js`` whose ``js_loss`` column is checked in results.csv.
    """
    tests = tmp_path / "tests"
    shutil.copytree(EXAMPLE / "tests", tests, ignore=ARTEFACTS)
    out = run(site, ["-m", "pytest", "-v", "-p", "no:cacheprovider", "--rootdir", str(tmp_path), str(tests)], tmp_path)
    assert out.returncode == 0, out.stdout[-4000:] + out.stderr[-2000:]
    for test in ("test_registered_through_the_entry_point", "test_trains_and_logs_js_loss", "test_matches_reference"):
        assert f"{test}" in out.stdout and "PASSED" in out.stdout.split(test, 1)[1].split("\n", 1)[0]
    # a conftest's `pytest_plugins = ["pairhook.pytest_plugin"]` (as pairhook's own) next to the entry point: one load
    both = run(site, ["-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "pairhook.pytest_plugin", "--co",
                      "--rootdir", str(tmp_path), str(tests)], tmp_path)
    assert both.returncode == 0, both.stdout[-2000:] + both.stderr[-2000:]
