"""Lines from a regular file or /dev/null, bounded like the pipe reader."""

from __future__ import annotations

import io

import pytest

from node.cli.lines import FileLines


async def test_lines_then_end_and_a_long_line_skipped_whole():
    data = b"@Sally one\n" + b"x" * 50 + b"\n@Sally two\nlast without newline"
    lines = FileLines(io.BytesIO(data), limit=20)
    assert await lines.readline() == b"@Sally one\n"
    with pytest.raises(ValueError):
        await lines.readline()
    assert await lines.readline() == b"@Sally two\n"
    assert await lines.readline() == b"last without newline"
    assert await lines.readline() == b""


async def test_no_stdin_reads_as_the_end():
    assert await FileLines(None, limit=20).readline() == b""
