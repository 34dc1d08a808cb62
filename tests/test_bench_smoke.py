"""`p2p-node bench --quick` runs every scenario end to end (figures are printed, never asserted)."""

from __future__ import annotations

import json
import subprocess
import sys

from node.bench.runner import SCENARIOS


def test_bench_quick_runs_every_scenario(tmp_path):
    out = tmp_path / "bench.json"
    proc = subprocess.run(
        [sys.executable, "-m", "node", "bench", "--quick", "--json", str(out)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    rows = json.loads(out.read_text())
    assert {r["scenario"].split(" ", 1)[0] for r in rows} == {
        str(i) for i in range(1, len(SCENARIOS) + 1)
    }
    assert all(r["value"] > 0 for r in rows if "frames" not in r["unit"])
    assert "baseline" in proc.stdout and f"[{len(SCENARIOS)}/{len(SCENARIOS)}]" in proc.stderr


def test_bench_refuses_an_unknown_scenario():
    proc = subprocess.run(
        [sys.executable, "-m", "node", "bench", "teleport"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 2 and "unknown scenario teleport" in proc.stderr
