"""Security cases not covered by the protocol tests: files readable by others are tightened."""

from __future__ import annotations

import logging

from node.crypto.keys import KEY_FILE, Identity


def test_key_file_and_data_dir_readable_by_others_are_fixed_with_a_warning(tmp_path, caplog):
    data = tmp_path / "alice"
    first = Identity.load_or_create(data)
    assert (data / KEY_FILE).stat().st_mode & 0o777 == 0o600
    assert data.stat().st_mode & 0o777 == 0o700
    data.chmod(0o755)
    (data / KEY_FILE).chmod(0o644)
    with caplog.at_level(logging.WARNING):
        again = Identity.load_or_create(data)
    assert again.key == first.key  # same identity, not a new one
    assert (data / KEY_FILE).stat().st_mode & 0o777 == 0o600
    assert data.stat().st_mode & 0o777 == 0o700
    warnings = " ".join(r.getMessage() for r in caplog.records)
    assert "readable by others" in warnings and KEY_FILE in warnings


def test_damaged_key_file_is_refused_with_what_to_do(tmp_path):
    import pytest

    from node.errors import IdentityError

    data = tmp_path / "bob"
    Identity.load_or_create(data)
    (data / KEY_FILE).write_text("not a key\n")
    with pytest.raises(IdentityError, match="restore it from a backup"):
        Identity.load_or_create(data)
