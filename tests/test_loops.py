"""The event loop a node runs on: --loop, the config's `loop`, P2P_LOOP, and uvloop missing."""

from __future__ import annotations

import asyncio
import os

import pytest

from node.errors import ConfigError
from node.loops import NOT_INSTALLED, env_choice, loop_factory, loop_name

from .procs import Proc, run_cli


def seed_loop(tmp_path, *args: str) -> tuple[str, list[str]]:
    """Start `p2p-node seed ARGS`, read the loop it says it runs on, stop it."""
    proc = Proc(["seed", "--port", "0", "--data-dir", str(tmp_path / "seed"), *args])
    try:
        line = proc.wait_for(
            lambda p: next((e for e in p.err if "event loop" in e), None), what="the loop line"
        )
        return line.split("running on the ")[1].split()[0], list(proc.err)
    finally:
        proc.stop()


async def test_a_seed_runs_on_the_loop_its_flag_or_config_names(tmp_path, monkeypatch):
    monkeypatch.delenv("P2P_LOOP", raising=False)
    config = tmp_path / "seed.toml"
    config.write_text('[seed]\nlog_level = "debug"\nloop = "uvloop"\n')
    loop, _ = await asyncio.to_thread(seed_loop, tmp_path, "--config", str(config))
    assert loop == "uvloop"
    loop, _ = await asyncio.to_thread(
        seed_loop, tmp_path, "--config", str(config), "--loop", "asyncio"
    )
    assert loop == "asyncio"  # the flag wins over the file


async def test_p2p_loop_names_the_loop_and_a_missing_uvloop_warns(tmp_path, monkeypatch):
    monkeypatch.setenv("P2P_LOOP", "uvloop")
    loop, _ = await asyncio.to_thread(seed_loop, tmp_path, "--log-level", "debug")
    assert loop == "uvloop"
    hidden = tmp_path / "no-uvloop"
    hidden.mkdir()
    (hidden / "uvloop.py").write_text("raise ImportError('not installed here')\n")
    monkeypatch.setenv(
        "PYTHONPATH", os.pathsep.join(filter(None, [str(hidden), os.environ.get("PYTHONPATH")]))
    )
    loop, err = await asyncio.to_thread(seed_loop, tmp_path, "--log-level", "debug")
    assert loop == "asyncio" and any(NOT_INSTALLED in line for line in err)


async def test_a_wrong_loop_is_one_clear_line_and_exit_2(tmp_path, monkeypatch):
    monkeypatch.delenv("P2P_LOOP", raising=False)
    config = tmp_path / "seed.toml"
    config.write_text('[seed]\nloop = "fast"\n')
    code, _, err = await run_cli("seed", "--port", "0", "--config", str(config))
    assert code == 2 and f"{config}:2:" in err and "loop" in err and "Traceback" not in err
    monkeypatch.setenv("P2P_LOOP", "fast")
    code, _, err = await run_cli("seed", "--port", "0", "--data-dir", str(tmp_path / "s"))
    assert code == 2 and "P2P_LOOP='fast'" in err and "Traceback" not in err


def test_the_choices(monkeypatch):
    warned: list[str] = []
    assert loop_factory(None, warned.append) is None
    assert loop_factory("asyncio", warned.append) is None
    assert loop_factory("auto", warned.append) is not None  # installed with the test extra
    assert not warned
    monkeypatch.setenv("P2P_LOOP", " ")
    assert env_choice() is None
    monkeypatch.setenv("P2P_LOOP", "uvloop2")
    with pytest.raises(ConfigError, match="P2P_LOOP"):
        env_choice()


async def test_the_tests_run_on_the_loop_p2p_loop_names():
    wanted = os.environ.get("P2P_LOOP", "").strip() or "asyncio"
    assert loop_name() == ("uvloop" if wanted in ("uvloop", "auto") else "asyncio")
