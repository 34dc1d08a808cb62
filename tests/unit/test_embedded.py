"""Where an app hosts the embedded seed: a pure choice from the configured seeds."""

from __future__ import annotations

from tui.embedded import embedded_address


def test_the_embedded_seed_listens_at_the_first_configured_seed_on_this_machine():
    assert embedded_address([]) == (5001, None)
    assert embedded_address(["wss://seed.example:443", "ws://seed.example:5001"]) == (5001, None)
    assert embedded_address(
        ["ws://seed.example:7000", "ws://127.0.0.1:6001/", "ws://localhost:6002"]
    ) == (
        6001,
        "ws://127.0.0.1:6001",
    )
    assert embedded_address(["ws://localhost:6002"]) == (6002, "ws://localhost:6002")
    assert embedded_address(["wss://127.0.0.1:6003", "ws://127.0.0.1"]) == (5001, None)
