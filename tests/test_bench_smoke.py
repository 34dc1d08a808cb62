"""`p2p-node bench --quick` runs every scenario end to end (figures are printed, never asserted)."""

from __future__ import annotations

import json
import subprocess
import sys

from node.bench.runner import SCENARIOS


def test_bench_quick_runs_every_scenario(tmp_path):
    # Three thirds at once: a quick run mostly waits on process starts, so this cuts the wall time
    # without asserting anything about speed.
    runs = []
    for i in range(3):
        names = SCENARIOS[i::3]
        out = tmp_path / f"bench-{i}.json"
        proc = subprocess.Popen(
            [sys.executable, "-m", "node", "bench", "--quick", "--json", str(out), *names],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        runs.append((proc, out, names))
    rows = []
    for proc, out, names in runs:
        stdout, stderr = proc.communicate(timeout=300)
        assert proc.returncode == 0, stderr[-3000:]
        assert "baseline" in stdout and f"[{len(names)}/{len(names)}]" in stderr
        rows += json.loads(out.read_text())
    assert {r["scenario"].split(" ", 1)[0] for r in rows} == {
        str(i) for i in range(1, len(SCENARIOS) + 1)
    }
    assert all(r["value"] > 0 for r in rows if "frames" not in r["unit"])


def test_bench_refuses_an_unknown_scenario():
    proc = subprocess.run(
        [sys.executable, "-m", "node", "bench", "teleport"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 2 and "unknown scenario teleport" in proc.stderr
