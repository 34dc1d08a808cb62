"""Replies, reactions, edits and deletes (r3): the plaintext's `act` object and the pure rules.

An act rides in the same box as any message (docs/PROTOCOL.md, "Replies, reactions, edits and
deletes (r3)"): the plaintext keeps a readable `text` for a node that does not know acts, and
adds `act`. This module parses and checks it, writes the fallback text, and decides what an act
may change; act_node.py stores and shows the outcome.
"""

from __future__ import annotations

import json
import unicodedata
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, StringConstraints, TypeAdapter, ValidationError

from ..errors import InvalidInput
from ..wire.names import fold_name
from ..wire.protocol import MAX_TEXT

Scope = Literal["p", "g"]  # where an act's target lives: a person's conversation or a group

ActType = Literal["reply", "react", "edit", "delete"]
MAX_EMOJI = 8  # code points in a reaction
MAX_REF = 64
QUOTE_CHARS = 80  # of the quoted line in a reply's fallback text
# bytes of JSON the fallback `text` and the `act` may take together in a plaintext: the box of a
# chat stays under MAX_BOX (47,000 base64 characters, about 35,000 bytes) with room for the other
# fields (ids, names, a group object), whatever the characters (a control character takes 6)
PLAIN_ROOM = 34_000
# code points allowed in a reaction besides symbols: joiner, variation selectors, keycap, tags
_JOINERS = {0x200D, 0xFE0E, 0xFE0F, 0x20E3}
_KEYCAP_BASES = set("0123456789#*")

UNCHANGED, EDITED, DELETED = 0, 1, 2  # a message's `changed` mark


class Act(BaseModel):
    """The plaintext's `act` object (exact fields, strict types)."""

    model_config = ConfigDict(strict=True, extra="forbid", frozen=True)

    type: ActType
    ref: Annotated[str, StringConstraints(min_length=1, max_length=MAX_REF)]
    text: Annotated[str, StringConstraints(max_length=MAX_TEXT)] = ""
    emoji: Annotated[str, StringConstraints(max_length=MAX_EMOJI)] = ""


ACT: TypeAdapter[Act] = TypeAdapter(Act)


def valid_emoji(emoji: str) -> bool:
    """Empty (no reaction), or 1 to 8 code points of symbols (an emoji with its joiners,
    variation selectors, skin tones, keycaps): never letters, spaces or controls."""
    if emoji == "":
        return True
    if len(emoji) > MAX_EMOJI:
        return False
    has_symbol = False
    for i, ch in enumerate(emoji):
        cat = unicodedata.category(ch)
        if cat in ("So", "Sk"):
            has_symbol = True
        elif ord(ch) in _JOINERS or 0xE0020 <= ord(ch) <= 0xE007F:
            continue
        elif ch in _KEYCAP_BASES and i == 0 and len(emoji) > 1 and ord(emoji[-1]) == 0x20E3:
            has_symbol = True
        else:
            return False
    return has_symbol


def parse_act(obj: Any) -> Act | None:
    """The `act` of a plaintext, or None when there is none or it is not one this node reads
    (then the message is shown as its `text`, as a node that does not know acts shows it)."""
    if obj is None:
        return None
    try:
        act = ACT.validate_python(obj)
    except ValidationError:
        return None
    if act.type == "react" and not valid_emoji(act.emoji):
        return None
    if act.type in ("reply", "edit") and not act.text:
        return None
    return act


def load(raw: str | None) -> Act | None:
    """An act as stored (our own JSON)."""
    return None if raw is None else parse_act(json.loads(raw))


def dump(act: Act) -> str:
    return json.dumps(act.model_dump(exclude_defaults=True), ensure_ascii=False)


def make(type_: ActType, ref: str, text: str = "", emoji: str = "") -> Act:
    """An act of ours, checked as a receiver checks it (InvalidInput says what is wrong)."""
    if type_ in ("reply", "edit"):
        if not text:
            raise InvalidInput("an empty message is not sent")
        if len(text) > MAX_TEXT:
            raise InvalidInput(f"a message holds at most {MAX_TEXT} characters")
    if type_ == "react" and not valid_emoji(emoji):
        raise InvalidInput(f"a reaction is one emoji (at most {MAX_EMOJI} code points)")
    return Act(type=type_, ref=ref, text=text, emoji=emoji)


def hidden(act: Act | None) -> bool:
    """Reactions, edits and deletes change another line; only a reply is a line of its own."""
    return act is not None and act.type != "reply"


def _line(text: str) -> str:
    first = text.split("\n", 1)[0]
    return first if len(first) <= QUOTE_CHARS else first[: QUOTE_CHARS - 1] + "…"


def fallback(act: Act, target_text: str | None) -> str:
    """The `text` a node that does not know acts shows (within the message limit, and cut so
    that it and the act fit in one box: a reply or an edit carries its text twice)."""
    quoted = _line(target_text) if target_text else "a message"
    if act.type == "reply":
        text = f"> {quoted}\n{act.text}" if target_text else act.text
    elif act.type == "react":
        text = f"reacted {act.emoji} to “{quoted}”" if act.emoji else "removed a reaction"
    elif act.type == "edit":
        text = f"edited: {act.text}"
    else:
        text = "deleted a message"
    return _fit(text[:MAX_TEXT], PLAIN_ROOM - _size(dump(act)))


def _size(s: str) -> int:
    return len(s.encode())


def _fit(text: str, room: int) -> str:
    """The longest start of `text` whose JSON takes at most `room` bytes."""
    if _size(json.dumps(text, ensure_ascii=False)) <= room:
        return text
    lo, hi = 0, len(text)
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if _size(json.dumps(text[:mid], ensure_ascii=False)) <= room:
            lo = mid
        else:
            hi = mid - 1
    return text[:lo]


def may_change(act: Act, act_sender: str, target_sender: str) -> bool:
    """An edit or delete is honoured only from the target's own sender; a reply or reaction
    may name anyone's message in the conversation."""
    if act.type in ("edit", "delete"):
        return fold_name(act_sender) == fold_name(target_sender)
    return True


def shown_text(text: str, act: Act | None, changed: int) -> str:
    """What a line shows: a reply's own text, nothing once deleted."""
    if changed == DELETED:
        return ""
    if act is not None and act.type == "reply":
        return act.text
    return text


def edited_act(act: Act | None, new_text: str) -> str | None:
    """A reply's stored act once its text is edited (the old text is kept nowhere)."""
    if act is None or act.type != "reply":
        return None if act is None else dump(act)
    return dump(Act(type="reply", ref=act.ref, text=new_text))


def tally(emojis: list[str]) -> tuple[tuple[str, int], ...]:
    """Reactions to one message as (emoji, count), most first, then first seen."""
    counts: dict[str, int] = {}
    for e in emojis:
        if e:
            counts[e] = counts.get(e, 0) + 1
    return tuple(sorted(counts.items(), key=lambda kv: -kv[1]))
