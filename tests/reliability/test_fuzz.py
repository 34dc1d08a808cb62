"""Fuzz: hypothesis frames against a live seed and a live user endpoint.

Every frame gets an answer (an `error`, or a reply when it happens to be valid) or a clean close;
the process never dies; a well-behaved client on another connection is served all along.
"""

from __future__ import annotations

import base64
import json
import subprocess
import sys
import time
from contextlib import ExitStack

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect

from node.clock import now_ms
from node.crypto.keys import Identity
from node.crypto.signing import sign_record

from ..procs import SeedProc, UserProc, rss_kb

MAX_FRAME = 65536
CLEAN_CLOSES = {1000, 1002, 1007, 1008, 1009}

json_leaf = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**200)
    | st.floats(allow_nan=False)
    | st.text(max_size=40)
)
json_value = st.recursive(
    json_leaf,
    lambda kids: (
        st.lists(kids, max_size=4) | st.dictionaries(st.text(max_size=8), kids, max_size=4)
    ),
    max_leaves=12,
)
TYPES = [
    "register",
    "lookup",
    "seeds",
    "watch",
    "seed_hello",
    "sync",
    "gossip",
    "found",
    "chat",
    "ack",
    "error",
    "teleport",
    "",
]
FIELDS = [
    "id",
    "name",
    "hops",
    "names",
    "record",
    "records",
    "presence",
    "done",
    "seeds",
    "url",
    "key",
    "from",
    "to",
    "nonce",
    "box",
]


def flip(text: str, where: int, bit: int) -> str:
    """One bit flipped in the text (kept valid UTF-8 by flipping within ASCII)."""
    if not text:
        return text
    i = where % len(text)
    c = chr((ord(text[i]) ^ (1 << bit)) & 0x7F or 0x41)
    return text[:i] + c + text[i + 1 :]


bits = st.tuples(st.integers(0, 10_000), st.integers(0, 6))


def signed_record() -> dict:
    return sign_record(Identity.generate(), "fuzzed", "ws://127.0.0.1:9", now_ms()).model_dump()


@st.composite
def frames(draw):
    """Text frames of every shape, or bytes for binary / invalid UTF-8 frames."""
    kind = draw(
        st.sampled_from(
            [
                "object",
                "json",
                "flipped-record",
                "truncated-b64",
                "deep",
                "huge",
                "binary",
                "bad-utf8",
                "at-limit",
                "over-limit",
                "garbage",
            ]
        )
    )
    if kind == "object":
        obj = {"type": draw(st.sampled_from(TYPES) | st.text(max_size=10) | json_value)}
        for field in draw(st.lists(st.sampled_from(FIELDS), max_size=5, unique=True)):
            obj[field] = draw(
                json_value | st.sampled_from(["x1", "Sally", "ws://127.0.0.1:1", "AAAA"])
            )
        return "text", json.dumps(obj)
    if kind == "json":
        return "text", json.dumps(draw(json_value))
    if kind == "flipped-record":
        rec = signed_record()
        field = draw(st.sampled_from(list(rec)))
        rec[field] = (
            flip(rec[field], *draw(bits)) if isinstance(rec[field], str) else rec[field] ^ 1
        )
        return "text", json.dumps({"type": "register", "id": "f", "record": rec})
    if kind == "truncated-b64":
        rec = signed_record()
        rec[draw(st.sampled_from(["key", "sig"]))] = rec["key"][: draw(st.integers(0, 43))]
        return "text", json.dumps({"type": "register", "id": "f", "record": rec})
    if kind == "deep":
        depth = draw(st.integers(100, 20_000))
        return "text", '{"type":"watch","id":"d","names":' + "[" * depth + "]" * depth + "}"
    if kind == "huge":
        return "text", '{"type":"lookup","id":"h","name":"x","hops":%d}' % draw(
            st.integers(2**63, 2**400)
        )
    if kind == "binary":
        return "binary", draw(st.binary(max_size=200))
    if kind == "bad-utf8":
        return "bad-utf8", b'{"type":"lookup","id":"u","name":"\xff\xfe"}'
    if kind == "at-limit":
        pad = MAX_FRAME - len('{"type":"lookup","id":"a","name":"x","pad":""}')
        return "text", '{"type":"lookup","id":"a","name":"x","pad":"%s"}' % ("p" * pad)
    if kind == "over-limit":
        return "text", '{"type":"lookup","id":"o","pad":"%s"}' % ("p" * MAX_FRAME)
    return "text", draw(st.text(max_size=300))


class Fuzzer:
    """One connection that is reopened whenever a frame closed it."""

    def __init__(self, url: str, challenged: bool = True) -> None:
        self.url = url
        self.challenged = challenged  # a seed speaks first, with its challenge
        self.stack = ExitStack()
        self.ws = None
        self.closes: list[int] = []
        self.answers = 0

    def send(self, kind: str, data) -> None:
        if self.ws is None:
            self.ws = self.stack.enter_context(
                connect(
                    self.url,
                    subprotocols=["p2pchat.v1"],
                    compression=None,
                    max_size=2**20,
                    proxy=None,
                )
            )
            if self.challenged:
                assert json.loads(self.ws.recv(timeout=5))["type"] == "challenge"
        try:
            if kind == "binary":
                self.ws.send(data)
            elif kind == "bad-utf8":
                self.ws.send(data, text=True)
            else:
                self.ws.send(data)
            reply = json.loads(self.ws.recv(timeout=5))
            assert isinstance(reply, dict) and "type" in reply, reply
            self.answers += 1
        except ConnectionClosed as exc:
            code = exc.rcvd.code if exc.rcvd else None
            assert code in CLEAN_CLOSES, f"unclean close {code} for {kind}"
            self.closes.append(code)
            self.ws = None


class Bystander:
    """A well-behaved client in its own process (so the fuzzer's CPU use in this one does not count)."""

    def __init__(self, url: str, name: str, clients: int = 1, interval_ms: int = 20) -> None:
        self.p = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "node.bench.worker",
                "paced",
                url,
                name,
                str(interval_ms),
                str(clients),
            ],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )

    def stop(self) -> dict:
        out, _ = self.p.communicate(timeout=30)
        return json.loads(out.strip().splitlines()[-1])


@pytest.fixture(scope="module")
def live(tmp_path_factory):
    base = tmp_path_factory.mktemp("fuzz")
    config = base / "seed.toml"
    config.write_text(
        "[seed]\nrate = 100000.0\nburst = 100000.0\n"
    )  # fuzz the parser, not the rate limit
    seed = SeedProc(base / "seed", "fuzz-seed", config=config)
    user = UserProc(base / "user", "fuzzuser", [seed.url])
    user.registered()
    yield seed, user
    user.stop()
    seed.stop()


def quiet_latency(url: str, name: str) -> dict:
    quiet = Bystander(url, name)
    time.sleep(2.0)  # a sample window, not a wait for an event
    return quiet.stop()


def examples(full: bool) -> settings:
    return settings(
        max_examples=2000 if full else 150,
        deadline=None,
        derandomize=not full,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
    )


def test_fuzz_seed(live, full):
    seed, _ = live
    fuzzer = Fuzzer(seed.url)
    rss0 = rss_kb(seed.p.pid)
    quiet = quiet_latency(seed.url, "fuzzuser")
    bystander = Bystander(seed.url, "fuzzuser")

    @examples(full)
    @given(frames())
    def run(frame):
        fuzzer.send(*frame)
        assert seed.alive

    run()
    busy = bystander.stop()
    assert seed.alive
    assert busy["failures"] == 0 and busy["n"] > 0
    assert fuzzer.answers > 0
    rss1 = rss_kb(seed.p.pid)
    print(
        f"\nfuzz seed: {fuzzer.answers} answered, closes {sorted(set(fuzzer.closes))}, "
        f"bystander p50 {quiet['p50_ms']:.2f} -> {busy['p50_ms']:.2f} ms, p99 {quiet['p99_ms']:.2f} -> {busy['p99_ms']:.2f} ms, "
        f"RSS {rss0} -> {rss1} KB"
    )
    if full:  # bounds on measurements: the default run only prints them
        assert busy["p99_ms"] <= 2 * quiet["p99_ms"] + 2.0, (quiet, busy)
        assert rss1 - rss0 < 50_000, "seed memory grew by more than 50 MB under fuzzing"


@st.composite
def chat_frames(draw):
    """Valid-looking chat frames with one thing wrong, or anything at all."""
    nonce = base64.b64encode(bytes(24)).decode()
    box = base64.b64encode(draw(st.binary(min_size=0, max_size=300))).decode()
    frame = {
        "type": "chat",
        "id": draw(st.uuids()).hex,
        "from": "fuzzuser2",
        "to": "fuzzuser",
        "nonce": nonce,
        "box": box,
    }
    mutate = draw(st.sampled_from(["box", "nonce", "to", "from", "drop", "type", "flip", "none"]))
    if mutate == "drop":
        del frame[draw(st.sampled_from(list(frame)))]
    elif mutate == "flip":
        field = draw(st.sampled_from(["box", "nonce", "id"]))
        frame[field] = flip(frame[field], *draw(bits))
    elif mutate != "none":
        frame[mutate] = draw(json_value)
    return "text", json.dumps(frame)


def test_fuzz_user_endpoint(live, full):
    seed, user = live
    endpoint = user.registered()["endpoint"]
    fuzzer = Fuzzer(endpoint, challenged=False)

    @examples(full)
    @given(chat_frames() | frames())
    def run(frame):
        fuzzer.send(*frame)
        assert user.alive

    run()
    assert user.alive and fuzzer.answers > 0
    assert not user.events("message"), "a fuzzed frame was shown as a message"
    # the user still works: it resolves and answers through its seed
    with connect(seed.url, subprotocols=["p2pchat.v1"], compression=None, proxy=None) as ws:
        assert json.loads(ws.recv(timeout=5))["type"] == "challenge"
        ws.send(json.dumps({"type": "lookup", "id": "x", "name": "fuzzuser"}))
        assert json.loads(ws.recv(timeout=5))["online"] is True
