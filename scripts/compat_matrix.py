#!/usr/bin/env python
"""Run the compat suite (tests/test_compat.py) against every row of .ci/matrix.yaml.

Each row's Ultralytics release is installed with ``pip install --no-deps --target`` into a cache folder next to the
base environment, together with the extra packages its row names (``pip:``) and, on a torch row, another torch
(``torch:``, installed with its dependencies, since a torch release pins its own CUDA libraries), and put first on
``PYTHONPATH`` for one pytest run. ``version: latest`` is resolved to the newest Ultralytics release on the package
index when the row runs. A row with ``blocking: false`` is reported loudly but does not fail the run. Prints a line
per row as it finishes and a Markdown table at the end (the table in docs/ultralytics-versions.md comes from it);
exits 1 if a blocking row fails.

    python scripts/compat_matrix.py                    # every row
    python scripts/compat_matrix.py only=8.1.47,8.4.0  # some rows, by name (a row's name defaults to its version)
    python scripts/compat_matrix.py list               # the rows' names as JSON (used by the GitHub workflow)
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
MATRIX = ROOT / ".ci" / "matrix.yaml"
CACHE = Path(os.environ.get("PAIRHOOK_COMPAT_CACHE", ROOT / ".compat"))
SUITE = "tests/test_compat.py"


def rows() -> list[dict]:
    out = yaml.safe_load(MATRIX.read_text())["rows"]
    for row in out:
        row.setdefault("name", str(row["version"]))
        row.setdefault("blocking", True)
    names = [r["name"] for r in out]
    assert len(set(names)) == len(names), f"two rows of {MATRIX} share a name: {names}"
    return out


def pip_target(target: Path, requirements: list[str], deps: bool, env: dict[str, str] | None = None) -> None:
    """Install ``requirements`` into ``target`` once (a ``.done`` marker makes reruns free)."""
    if (target / ".done").exists():
        return
    cmd = [sys.executable, "-m", "pip", "install", "-q", "--disable-pip-version-check", "--target", str(target)]
    subprocess.run([*cmd, *([] if deps else ["--no-deps"]), *requirements], check=True,
                   env={**os.environ, **(env or {})})
    (target / ".done").touch()


def newest_release(package: str = "ultralytics") -> str:
    """The newest release of ``package`` on the package index, as pip resolves it now (no install)."""
    out = subprocess.run([sys.executable, "-m", "pip", "install", "--dry-run", "--no-deps", "--ignore-installed",
                          "--disable-pip-version-check", "-q", "--report", "-", package],
                         check=True, capture_output=True, text=True, timeout=300)
    return json.loads(out.stdout)["install"][0]["metadata"]["version"]


def requirement_key(requirements: list[str]) -> str:
    return hashlib.sha1(" ".join(sorted(requirements)).encode()).hexdigest()[:10]


def prepare(row: dict) -> tuple[list[Path], dict[str, str]]:
    """Install the row's release, extras and torch; return the PYTHONPATH entries and environment it runs with."""
    paths = [CACHE / f"ultralytics-{row['version']}"]
    pip_target(paths[0], [f"ultralytics=={row['version']}"], deps=False)
    extras = sorted(row.get("pip") or [])
    if extras:
        paths.append(CACHE / f"extras-{requirement_key(extras)}")
        pip_target(paths[-1], extras, deps=True)
    env = {k: str(v) for k, v in (row.get("env") or {}).items()}
    torch = sorted(row.get("torch") or [])
    if torch:
        # with its dependencies (its own CUDA libraries); PIP_CONSTRAINT: a machine's pip constraints file may cap
        # torch at the base environment's release, which is what this row must get past
        paths.append(CACHE / f"torch-{requirement_key(torch)}")
        pip_target(paths[-1], torch, deps=True, env={"PIP_CONSTRAINT": os.devnull})
        env["PAIRHOOK_EXPECT_TORCH"] = next(r.split("==")[1] for r in torch if r.startswith("torch=="))
    return paths, env


def run_row(row: dict, timeout: int = 1200) -> dict:
    start = time.monotonic()
    if row["version"] == "latest":
        try:
            row = {**row, "version": newest_release(), "why": f"{row.get('why', '')} (resolved now)".strip()}
        except (subprocess.SubprocessError, OSError, KeyError, IndexError, ValueError) as e:
            return {"name": row["name"], "version": "latest", "ok": False, "rc": 1, "blocking": row["blocking"],
                    "summary": f"could not resolve the newest release: {e}", "seconds": 0,
                    "why": row.get("why", ""), "tail": str(e)}
    try:
        paths, extra_env = prepare(row)
    except subprocess.CalledProcessError as e:
        return {"name": row["name"], "version": row["version"], "ok": False, "rc": e.returncode,
                "blocking": row["blocking"], "summary": f"install failed: {e}", "why": row.get("why", ""),
                "seconds": round(time.monotonic() - start), "tail": str(e)}
    env = {**os.environ, **extra_env, "PAIRHOOK_EXPECT_ULTRALYTICS": row["version"],
           "PYTHONPATH": os.pathsep.join([*map(str, paths), str(ROOT), os.environ.get("PYTHONPATH", "")])}
    cmd = [sys.executable, "-m", "pytest", "-q", "--disable-warnings", "-p", "no:cacheprovider", SUITE]
    try:
        out = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout)
        tail, rc = (out.stdout + out.stderr)[-4000:], out.returncode
    except subprocess.TimeoutExpired:
        tail, rc = f"timed out after {timeout} s", 124
    counts = re.findall(r"(\d+) (passed|failed|errors?|skipped)", tail.splitlines()[-1] if tail.strip() else "")
    summary = ", ".join(f"{n} {what}" for n, what in counts) or tail[-300:]
    return {"name": row["name"], "version": row["version"], "ok": rc == 0, "rc": rc, "summary": summary,
            "blocking": row["blocking"], "torch": extra_env.get("PAIRHOOK_EXPECT_TORCH", ""),
            "seconds": round(time.monotonic() - start), "why": row.get("why", ""), "tail": tail}


def verdict(r: dict) -> str:
    return "pass" if r["ok"] else "FAIL" if r["blocking"] else "FAIL (non-blocking)"


def table(results: list[dict]) -> str:
    lines = ["| row | Ultralytics | torch | result | tests | time | why this row |", "|---|---|---|---|---|---|---|"]
    for r in results:
        torch = r.get("torch") or "base"
        lines.append(f"| {r['name']} | {r['version']} | {torch} | {verdict(r)} | {r['summary']} | {r['seconds']} s "
                     f"| {r['why']} |")
    return "\n".join(lines)


def main(argv: list[str]) -> int:
    selected = rows()
    if "list" in argv:
        print(json.dumps([r["name"] for r in selected]))
        return 0
    only = next((a.split("=", 1)[1].split(",") for a in argv if a.startswith("only=")), None)
    if only:
        selected = [r for r in selected if r["name"] in only]
    CACHE.mkdir(parents=True, exist_ok=True)
    results = []
    for i, row in enumerate(selected, 1):
        print(f"compat [{i}/{len(selected)}] {row['name']} ...", flush=True)
        res = run_row(row)
        results.append(res)
        print(f"compat [{i}/{len(selected)}] {row['name']} (ultralytics {res['version']}"
              f"{', torch ' + res['torch'] if res.get('torch') else ''}): {verdict(res)} "
              f"({res['summary']}, {res['seconds']} s)", flush=True)
        if not res["ok"]:
            print(res["tail"], flush=True)
    report = table(results)
    (CACHE / "results.md").write_text(report + "\n")
    print(report)
    loud = [r for r in results if not r["ok"] and not r["blocking"]]
    for r in loud:
        bar = "!" * 100
        print(f"{bar}\ncompat: NON-BLOCKING ROW FAILED: {r['name']} (ultralytics {r['version']}): {r['summary']}\n"
              f"  pairhook does not work with this release yet; this does not fail the run (.ci/matrix.yaml)\n{bar}",
              flush=True)
    return 0 if all(r["ok"] for r in results if r["blocking"]) else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
