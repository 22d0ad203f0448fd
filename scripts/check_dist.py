#!/usr/bin/env python
"""Build pairhook's wheel and sdist, check their metadata, install the wheel into a fresh virtual environment beside
torch, and run the smoke tests (tests/test_dist.py) against that installation.

    python scripts/check_dist.py [--work DIR]

1. a tools environment with ``build`` and ``twine``; ``python -m build`` makes the sdist and, from it, the wheel
   (also the plugin example's wheel);
2. ``twine check --strict`` on both (the metadata and the README as a package index renders it);
3. a fresh ``venv`` (no system site-packages) with ``torch==2.14.1 torchvision==0.29.1``, the wheel with its
   ``test`` extra, and the plugin example's wheel;
4. ``pytest -m dist tests/test_dist.py`` with ``PAIRHOOK_DIST_PYTHON`` and ``PAIRHOOK_DIST_DIR`` set: the CLI and
   the plugin example run from the fresh environment, and the sdist's own tests from the unpacked sdist.

The environments (about 6 GB, torch included) live in a temporary folder that is removed afterwards, pass or
fail; with ``--work DIR`` they are kept there. Run with the checkout's environment
(``.venv/bin/python scripts/check_dist.py``); needs the package index that ``scripts/setup.sh`` uses. Prints each
step's time; exits non-zero on the first failure.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TORCH = ["torch==2.14.1", "torchvision==0.29.1"]  # as scripts/setup.sh installs them
PIP = ["-m", "pip", "install", "-q", "--disable-pip-version-check"]


def step(name: str, cmd: list[str], **kw) -> None:
    start = time.monotonic()
    print(f"check_dist: {name} ...", flush=True)
    subprocess.run(cmd, check=True, **kw)
    print(f"check_dist: {name}: {time.monotonic() - start:.0f} s", flush=True)


def make_venv(path: Path) -> Path:
    venv.EnvBuilder(with_pip=True, clear=True).create(path)
    return path / "bin" / "python"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--work", type=Path, default=None, help="folder for the environments and dist (default: temp)")
    a = ap.parse_args()
    if a.work:
        return check(a.work.resolve())
    work = Path(tempfile.mkdtemp(prefix="pairhook-dist-"))
    try:
        return check(work)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def check(work: Path) -> int:
    work.mkdir(parents=True, exist_ok=True)
    dist, start = work / "dist", time.monotonic()
    print(f"check_dist: working in {work}")

    tools = make_venv(work / "tools")
    step("tools (build, twine)", [str(tools), *PIP, "build", "twine"])
    step("build sdist + wheel", [str(tools), "-m", "build", "--outdir", str(dist), str(ROOT)],
         stdout=subprocess.DEVNULL)
    step("build the plugin example's wheel", [str(tools), "-m", "build", "--wheel", "--outdir", str(work / "example"),
                                              str(ROOT / "examples" / "pairhook-plugin-example")],
         stdout=subprocess.DEVNULL)
    step("twine check --strict", [str(tools), "-m", "twine", "check", "--strict", *map(str, sorted(dist.iterdir()))])

    (wheel,) = dist.glob("pairhook-*.whl")
    (example,) = (work / "example").glob("*.whl")
    python = make_venv(work / "venv")
    step("fresh venv: torch + the wheel[test] + the example", [str(python), *PIP, *TORCH, f"{wheel}[test]",
                                                               str(example)])
    env = {**os.environ, "PAIRHOOK_DIST_PYTHON": str(python), "PAIRHOOK_DIST_DIR": str(dist)}
    step("smoke tests against the installed wheel", [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                                                     "-m", "dist", "tests/test_dist.py"], cwd=ROOT, env=env)
    print(f"check_dist: all passed in {time.monotonic() - start:.0f} s ({work})")
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except subprocess.CalledProcessError as e:
        print(f"check_dist: FAILED: {' '.join(map(str, e.cmd))} (exit {e.returncode})", file=sys.stderr)
        sys.exit(1)
