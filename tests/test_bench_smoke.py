"""`p2p-node bench --quick` runs every scenario end to end (figures are printed, never asserted)."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys

import pytest

from node.bench import runner
from node.bench.runner import SCENARIOS

PARTS = 4  # a quick run mostly waits on process starts: the parts run on separate test workers


@pytest.mark.parametrize("part", range(PARTS))
def test_bench_quick_runs_every_scenario(tmp_path, part):
    names = SCENARIOS[part::PARTS]
    out = tmp_path / "bench.json"
    # its own process group: a bench stopped by a timeout takes the seeds and nodes it started
    # with it, instead of leaving them running
    proc = subprocess.Popen(
        [sys.executable, "-m", "node", "bench", "--quick", "--json", str(out), *names],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        stdout, stderr = proc.communicate(timeout=300)
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    assert proc.returncode == 0, stderr[-3000:]
    assert "baseline" in stdout and f"[{len(names)}/{len(names)}]" in stderr
    rows = json.loads(out.read_text())
    numbers = {SCENARIOS.index(n) + 1 for n in names}
    assert {int(r["scenario"].split(" ", 1)[0]) for r in rows} == numbers
    assert all(r["value"] > 0 for r in rows if "frames" not in r["unit"] and not r["skipped"])


async def test_bench_fleet_says_why_it_skipped_without_nats_server(monkeypatch, tmp_path):
    """Where no nats-server is installed, the fleet scenario prints one row saying so and why."""
    monkeypatch.setattr(runner, "nats_server_binary", lambda: None)
    bench = runner.Bench(quick=True, seed_url=None, progress=print)
    await bench.fleet(runner.Procs(tmp_path))
    [row] = bench.rows
    assert row.skipped and "no nats-server" in row.figure
    assert "no nats-server" in runner.table(bench.rows)
