"""The hand-built canonical bytes (records, ack proofs) equal the contract's json.dumps definition, for any input."""

import json

from hypothesis import given
from hypothesis import strategies as st

from node.crypto.signing import RECORD_PREFIX as RECORD_SIG_PREFIX
from node.crypto.signing import ack_bytes
from node.crypto.signing import record_bytes as record_signed_bytes

names = st.from_regex(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,31}", fullmatch=True)
keys = st.binary(min_size=32, max_size=32).map(lambda b: __import__("base64").b64encode(b).decode())


@given(names, keys, st.text(max_size=200), st.integers(min_value=1, max_value=2**63 - 1))
def test_signed_bytes_match_the_contract(name, key, endpoint, seq):
    record = {"name": name, "key": key, "endpoint": endpoint, "seq": seq}
    contract = (
        RECORD_SIG_PREFIX
        + json.dumps(record, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()
    )
    assert record_signed_bytes(name, key, endpoint, seq) == contract


@given(names, st.text(min_size=1, max_size=64), names)
def test_ack_bytes_match_the_contract(sender, msg_id, recipient):
    said = {"from": sender, "id": msg_id, "to": recipient}
    contract = (
        b"p2pchat-ack-v1:"
        + json.dumps(said, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()
    )
    assert ack_bytes(sender, msg_id, recipient) == contract
