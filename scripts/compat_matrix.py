#!/usr/bin/env python
"""Run the compat suite (tests/test_compat.py) against every Ultralytics release pinned in .ci/matrix.yaml.

Each release is installed with ``pip install --no-deps --target`` into a cache folder next to the base environment,
together with the extra packages its row names, and put first on ``PYTHONPATH`` for one pytest run. Prints a line
per row as it finishes and a Markdown table at the end (the table in docs/ultralytics-versions.md comes from it); exits 1 if a row fails.

    python scripts/compat_matrix.py                    # every row
    python scripts/compat_matrix.py only=8.1.47,8.4.0  # some rows
    python scripts/compat_matrix.py list               # the rows as JSON (used by the GitHub workflow)
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
    return yaml.safe_load(MATRIX.read_text())["rows"]


def pip_target(target: Path, requirements: list[str], deps: bool) -> None:
    """Install ``requirements`` into ``target`` once (a ``.done`` marker makes reruns free)."""
    if (target / ".done").exists():
        return
    cmd = [sys.executable, "-m", "pip", "install", "-q", "--disable-pip-version-check", "--target", str(target)]
    subprocess.run([*cmd, *([] if deps else ["--no-deps"]), *requirements], check=True)
    (target / ".done").touch()


def prepare(row: dict) -> tuple[list[Path], dict[str, str]]:
    """Install the row's release and extras; return the PYTHONPATH entries and environment it runs with."""
    paths = [CACHE / f"ultralytics-{row['version']}"]
    pip_target(paths[0], [f"ultralytics=={row['version']}"], deps=False)
    extras = sorted(row.get("pip") or [])
    if extras:
        key = hashlib.sha1(" ".join(extras).encode()).hexdigest()[:10]
        paths.append(CACHE / f"extras-{key}")
        pip_target(paths[1], extras, deps=True)
    return paths, {k: str(v) for k, v in (row.get("env") or {}).items()}


def run_row(row: dict, timeout: int = 1200) -> dict:
    start = time.monotonic()
    paths, extra_env = prepare(row)
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
    return {"version": row["version"], "ok": rc == 0, "rc": rc, "summary": summary,
            "seconds": round(time.monotonic() - start), "why": row.get("why", ""), "tail": tail}


def table(results: list[dict]) -> str:
    lines = ["| Ultralytics | result | tests | time | why this row |", "|---|---|---|---|---|"]
    for r in results:
        result = "pass" if r["ok"] else "FAIL"
        lines.append(f"| {r['version']} | {result} | {r['summary']} | {r['seconds']} s | {r['why']} |")
    return "\n".join(lines)


def main(argv: list[str]) -> int:
    selected = rows()
    if "list" in argv:
        print(json.dumps([r["version"] for r in selected]))
        return 0
    only = next((a.split("=", 1)[1].split(",") for a in argv if a.startswith("only=")), None)
    if only:
        selected = [r for r in selected if r["version"] in only]
    CACHE.mkdir(parents=True, exist_ok=True)
    results = []
    for i, row in enumerate(selected, 1):
        print(f"compat [{i}/{len(selected)}] ultralytics {row['version']} ...", flush=True)
        res = run_row(row)
        results.append(res)
        print(f"compat [{i}/{len(selected)}] ultralytics {row['version']}: {'pass' if res['ok'] else 'FAIL'} "
              f"({res['summary']}, {res['seconds']} s)", flush=True)
        if not res["ok"]:
            print(res["tail"], flush=True)
    report = table(results)
    (CACHE / "results.md").write_text(report + "\n")
    print(report)
    return 0 if all(r["ok"] for r in results) else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
