"""The fleet's storage settings: which NATS servers are refused, how `--storage` is read."""

from __future__ import annotations

import pytest

from node.errors import ConfigError
from node.seed.storage.nats import check_version, parse_url, token


def test_a_server_without_sync_interval_or_the_cas_fix_is_refused():
    with pytest.raises(ConfigError, match="2.9.10 is too old"):
        check_version((2, 9, 10))  # Debian's: lost most concurrent compare-and-set updates
    check_version((2, 10, 0))
    check_version((2, 15, 1))


def test_storage_url():
    assert parse_url("nats://h1:1,h2:2, h3:3") == (
        ["nats://h1:1", "nats://h2:2", "nats://h3:3"],
        "p2p",
    )
    assert parse_url("nats://h1:1/blue") == (["nats://h1:1"], "blue")
    for bad in ("sqlite", "nats://", "redis://h:1"):
        with pytest.raises(ConfigError):
            parse_url(bad)


def test_names_become_safe_subject_tokens():
    for name in ("bob", "a.b", "x y", "*>", "ünï"):
        t = token(name)
        assert t and all(c.isalnum() and c.isascii() for c in t)
    assert token("a.b") != token("a b")


def test_storage_setting_is_checked():
    from pydantic import ValidationError

    from node.config import SeedConfig

    assert SeedConfig().storage == "sqlite"
    assert SeedConfig(storage="nats://a:1,b:2/blue").storage == "nats://a:1,b:2/blue"
    for bad in ("redis://h:1", "nats://", "nats://a:1/b/c", "SQLite"):
        with pytest.raises(ValidationError, match="must be 'sqlite' or nats://"):
            SeedConfig(storage=bad)
