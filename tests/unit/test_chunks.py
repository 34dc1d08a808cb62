"""Frames cut by encoded size: every frame fits, nothing is lost or reordered."""

import json

from node.seed import chunks

LIMIT = 4_096


def items(n: int, size: int = 300) -> list[str]:
    return [json.dumps({"n": i, "pad": "é" * size}, ensure_ascii=False) for i in range(n)]


def test_sync_frames_fit_keep_order_and_only_the_last_says_done():
    texts = items(60)
    out = list(
        chunks.frames(
            "sync", [("records", t, i + 1) for i, t in enumerate(texts)], ("E", 99), LIMIT, True
        )
    )
    assert len(out) > 1 and all(len(f.encode()) <= LIMIT for f in out)
    parsed = [json.loads(f) for f in out]
    assert [r["n"] for p in parsed for r in p["records"]] == list(range(60))
    assert [p["done"] for p in parsed] == [False] * (len(out) - 1) + [True]
    assert parsed[-1]["rev"] == ["E", 99]


def test_an_empty_sync_is_one_frame_that_says_done():
    assert [json.loads(f) for f in chunks.frames("sync", [], ("E", 7), LIMIT, True)] == [
        {"type": "sync", "rev": ["E", 7], "done": True}
    ]


def test_mail_frames_fit_by_bytes_and_keep_order():
    # two-byte characters: a cut by characters would overflow the limit
    out = list(chunks.mail_frames(items(60), LIMIT))
    assert len(out) > 1 and all(len(f.encode()) <= LIMIT for f in out)
    assert [i["n"] for f in out for i in json.loads(f)["items"]] == list(range(60))
    assert list(chunks.mail_frames([], LIMIT)) == []
