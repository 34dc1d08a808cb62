"""What the input holds per conversation, kept across restarts: the draft, what was sent (for Up
and Down) and which conversation was open last (`drafts.json` in the data dir).

One input serves every conversation, so without this a half-typed line for Bob would go to
Carol after a switch. Everything here is bounded: a file that grew by hand or by a bug cannot
make the app slow to start or fill the disk.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

from node.wire.names import fold_name

log = logging.getLogger("p2p.tui")

HISTORY_ENTRIES = 100  # lines kept for Up per conversation
HISTORY_BYTES = 64 * 1024  # and their UTF-8 size at most, oldest dropped first
DRAFT_BYTES = 64 * 1024  # a longer draft is not kept (it is over the message limit anyway)
CONVERSATIONS = 500  # conversations kept; those without a draft and oldest in use go first
FILE_BYTES = CONVERSATIONS * (HISTORY_BYTES + DRAFT_BYTES) + 4096
NO_CONVERSATION = ""  # the key of the input while no conversation is open


def conversation_key(name: str | None) -> str:
    """The key a conversation is kept under: its folded name (`Bob` and `bob` are one)."""
    return NO_CONVERSATION if name is None else fold_name(name)


def _size(lines: list[str]) -> int:
    return sum(len(line.encode()) for line in lines)


def bounded(history: list[str]) -> list[str]:
    """The newest entries of `history` that fit the count and byte bounds."""
    kept = [h for h in history[-HISTORY_ENTRIES:] if len(h.encode()) <= HISTORY_BYTES]
    while kept and _size(kept) > HISTORY_BYTES:
        kept.pop(0)
    return kept


class Drafts:
    """Drafts and sent lines per conversation; `last` is the conversation open at the end."""

    def __init__(self) -> None:
        self.drafts: dict[str, str] = {}
        self.history: dict[str, list[str]] = {}
        self.last: str | None = None

    def draft(self, name: str | None) -> str:
        return self.drafts.get(conversation_key(name), "")

    def keep(self, name: str | None, text: str) -> None:
        """Keep `text` as the draft of `name` (an empty or oversized one is dropped)."""
        key = conversation_key(name)
        if text.strip() and len(text.encode()) <= DRAFT_BYTES:
            self.drafts[key] = text
        else:
            self.drafts.pop(key, None)

    def sent(self, name: str | None) -> list[str]:
        """The list of lines sent in `name`, newest last (the composer appends to it)."""
        return self.history.setdefault(conversation_key(name), [])

    def trim(self) -> None:
        """Bound each history in place (the composer holds the open one's list) and the number
        of conversations kept (at load, before any list is handed out)."""
        for lines in self.history.values():
            lines[:] = bounded(lines)
        keys = [k for k in dict.fromkeys([*self.history, *self.drafts]) if self.history.get(k)]
        keys += [k for k in self.drafts if k not in keys]  # oldest first
        excess = len(keys) - CONVERSATIONS
        if excess > 0:  # those without a draft go first
            for key in sorted(keys, key=lambda k: k in self.drafts)[:excess]:
                self.history.pop(key, None)
                self.drafts.pop(key, None)

    @classmethod
    def load(cls, path: Path) -> tuple[Drafts, list[str]]:
        """The saved drafts, and a warning when the file was unusable (it is kept aside)."""
        drafts = cls()
        if not path.exists():
            return drafts, []
        try:
            if path.stat().st_size > FILE_BYTES:
                raise ValueError(f"larger than {FILE_BYTES:,} bytes")
            data = json.loads(path.read_text(encoding="utf-8"))
            last = data.get("last")
            drafts.last = last if isinstance(last, str) and last else None
            for key, text in dict(data.get("drafts", {})).items():
                if isinstance(text, str) and text.strip() and len(text.encode()) <= DRAFT_BYTES:
                    drafts.drafts[str(key)] = text
            for key, lines in dict(data.get("history", {})).items():
                if isinstance(lines, list):
                    drafts.history[str(key)] = [line for line in lines if isinstance(line, str)]
        except (OSError, ValueError, TypeError, AttributeError, UnicodeDecodeError) as exc:
            backup = path.with_suffix(".json.bad")
            try:
                path.replace(backup)
            except OSError:
                pass
            return cls(), [f"{path.name} was unusable ({exc}); kept as {backup.name}"]
        drafts.trim()
        return drafts, []

    def save(self, path: Path) -> None:
        for lines in self.history.values():
            lines[:] = bounded(lines)
        history = {key: lines for key, lines in self.history.items() if lines}
        data = {"last": self.last, "drafts": self.drafts, "history": history}
        tmp = path.with_suffix(".tmp-drafts")
        tmp.write_text(json.dumps(data, ensure_ascii=False), encoding="utf-8")
        tmp.chmod(0o600)
        tmp.replace(path)
