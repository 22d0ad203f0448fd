"""The matrix runner's rules (scripts/compat_matrix.py, .ci/matrix.yaml): the torch row and the `latest` row are
there, and a failing non-blocking row is reported without failing the run, while a failing pinned row fails it."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "scripts"))
import compat_matrix  # noqa: E402


def test_matrix_has_the_newest_torch_and_a_non_blocking_latest_row():
    rows = {r["name"]: r for r in compat_matrix.rows()}
    latest = rows["latest"]
    assert latest["version"] == "latest" and latest["blocking"] is False
    torch_rows = [r for r in rows.values() if r.get("torch")]
    assert any("torch==2.15.0" in r["torch"] for r in torch_rows)
    assert all(r["blocking"] for r in rows.values() if r["name"] != "latest")


@pytest.mark.parametrize(("failing", "code"), [("latest", 0), ("8.4.0", 1), (None, 0)])
def test_only_blocking_rows_fail_the_run(monkeypatch, tmp_path, capsys, failing, code):
    monkeypatch.setattr(compat_matrix, "CACHE", tmp_path)

    def run_row(row):
        ok = row["name"] != failing
        return {"name": row["name"], "version": row["version"], "ok": ok, "rc": 0 if ok else 1, "tail": "",
                "summary": "1 passed" if ok else "1 failed", "blocking": row["blocking"], "seconds": 0, "why": ""}

    monkeypatch.setattr(compat_matrix, "run_row", run_row)
    assert compat_matrix.main(["only=8.4.0,latest"]) == code
    out = capsys.readouterr().out
    assert ("NON-BLOCKING ROW FAILED: latest" in out) == (failing == "latest")
    assert "| latest | latest | base | " in out
