"""Relay and mail on the seed side: frames between users who cannot meet directly, never opened.

A relayed frame goes to every home seed where its recipient is online; a deposited item is
committed to disk before `deposited`, replicated to every seed, handed to its recipient when
it proves its session, and deleted only by the recipient's signed take.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from ..clock import now_ms
from ..crypto.signing import verify_mail, verify_take
from ..errors import ErrorCode, ProtocolError, StoreError
from ..runtime import quiet_logger
from ..wire.limits import RateLimit
from ..wire.names import fold_name
from ..wire.protocol import (
    CARRIED,
    MAX_FRAME,
    Carried,
    CarriedChat,
    Deposit,
    Deposited,
    MailItem,
    PeerRelay,
    Relay,
    Take,
    Taken,
    Took,
    dump,
    error_frame,
)
from ..wire.relay_text import RelayText, json_text
from ..wire.sockets import address_group
from . import chunks
from .mailbox import MINUTE_MS, ident_of
from .sides import PostSeed, SessionSide
from .storage.base import Deleted, Underway
from .storage.base import Deposited as Holding

log = quiet_logger("p2p.seed.post")

MAX_HOMES = 4
MAX_BACKLOG = 2_000  # mail items kept back for a session while its held mail is handed over


class Post:
    def __init__(self, seed: PostSeed) -> None:
        self.seed = seed
        # relays that came over seed links, budgeted per recipient like a user's own (and per
        # link and sender in seed.links)
        self.inbound: dict[str, RateLimit] = {}

    def _fail(self, session: SessionSide, code: ErrorCode, message: str, frame_id: str) -> None:
        session.out.push(error_frame(code, message, frame_id))

    # ------------------------------------------------------------------ relay

    def relay(self, session: SessionSide, frame: Relay) -> None:
        carried = frame.frame
        chat_from = carried.from_ if isinstance(carried, CarriedChat) else None
        self._relay(session, frame.id, frame.to, chat_from, carried)

    def relay_text(self, session: SessionSide, frame: RelayText) -> None:
        """A relay on the fast path: the carried frame is forwarded as the text it came in."""
        self._relay(session, frame.id, frame.to, frame.chat_from, frame.frame)

    def _relay(
        self,
        session: SessionSide,
        frame_id: str,
        to_name: str,
        chat_from: str | None,
        carried: Any,
    ) -> None:
        """Hand `carried` (a model, or the frame's text on the fast path) to `to_name`'s homes."""
        seed = self.seed
        if session.folded is None:
            return self._fail(
                session, ErrorCode.NOT_REGISTERED, "relay needs a registered socket", frame_id
            )
        sender = seed.directory.display_name(session.folded) or session.folded
        if chat_from is not None and fold_name(chat_from) != session.folded:
            return self._fail(
                session,
                ErrorCode.BAD_REQUEST,
                "a relayed chat must be from this socket's name",
                frame_id,
            )
        size = len(carried if isinstance(carried, str) else dump(carried))
        loop_now = asyncio.get_running_loop().time()
        if session.relay_budget is None:
            session.relay_budget = RateLimit(
                seed.config.relay_rate, seed.config.relay_burst, loop_now
            )
        if not session.relay_budget.allows(loop_now, size):
            seed.count("relay_rate_limited")
            return self._fail(
                session, ErrorCode.RATE_LIMITED, "relay budget spent; slow down", frame_id
            )
        to = fold_name(to_name)
        if to not in seed.directory.entries:
            return self._fail(
                session, ErrorCode.NOT_FOUND, f"no user named {to_name!r} is registered", frame_id
            )
        handed = 0
        model: Carried | None = None if isinstance(carried, str) else carried
        for home in seed.directory.homes(to)[:MAX_HOMES]:
            if home == seed.key:
                handed += self.hand_relayed(sender, to, carried)
                continue
            if model is None:  # a peer's link and the fleet's bus take the model
                model = CARRIED.validate_json(carried)
            if seed.fleet is not None and home in seed.fleet.members:
                handed += seed.fleet.relay(home, sender, to, model)
            else:
                handed += seed.mesh.relay(
                    home, PeerRelay(type="relay", from_=sender, to=to_name, frame=model)
                )
        if not handed:
            return self._fail(session, ErrorCode.OFFLINE, f"{to_name} is online nowhere", frame_id)
        session.out.push(f'{{"type":"relay_ok","id":{json_text(frame_id)}}}')

    def hand_relayed(self, sender: str, to: str, carried: Any) -> int:
        """Push a relayed frame (a model, or its text as it came) to the recipient's socket here;
        1 when it had one. Built as `dump(Relayed(...))` would write it, in one string operation."""
        target = self.seed.bound.get(fold_name(to))
        if target is None:
            return 0
        text = carried if isinstance(carried, str) else dump(carried)
        target.out.push(f'{{"type":"relayed","from":{json_text(sender)},"frame":{text}}}')
        return 1

    def peer_relay(self, frame: PeerRelay, link_key: str) -> None:
        """A relay that came over a seed link: ours to hand over when the recipient is here, within
        the link's budget: per sender name (a user's relay budget, as its own seed applies) and
        for the whole link (large for a configured peer, small for a stranger, which needs no
        user), and within the recipient's budget."""
        seed = self.seed
        if fold_name(frame.to) not in seed.bound:
            seed.count("relay_not_here")
            return
        size = len(dump(frame.frame))
        now = asyncio.get_running_loop().time()
        trusted = seed.trusted(link_key)
        if not seed.links.relay_allows(link_key, fold_name(frame.from_), trusted, now, size):
            seed.count("relay_in_over_budget")
            return
        key = f"to {fold_name(frame.to)}"
        bucket = self.inbound.get(key)
        if bucket is None:
            if len(self.inbound) > 100_000:
                self.inbound.clear()
            bucket = self.inbound[key] = RateLimit(
                seed.config.relay_rate, seed.config.relay_burst, now
            )
        if not bucket.allows(now, size):
            seed.count("relay_in_over_budget")
            return
        self.hand_relayed(frame.from_, frame.to, frame.frame)

    # ------------------------------------------------------------------ mail

    def _item_problem(self, item: MailItem, now: int, fresh: bool) -> ProtocolError | None:
        """Why an item may not be held (deposit or replica), or None. Checks the signature last."""
        directory = self.seed.directory
        if item.to not in directory:
            return ProtocolError(ErrorCode.NOT_FOUND, f"no user named {item.to!r} is registered")
        sender_key = directory.key_of(item.from_)
        if sender_key is None:
            return ProtocolError(ErrorCode.NOT_FOUND, f"no user named {item.from_!r} is registered")
        if fresh and abs(item.at - now) > MINUTE_MS:
            return ProtocolError(
                ErrorCode.BAD_REQUEST,
                "the item's time is more than a minute from this seed's clock",
            )
        if item.at > now + MINUTE_MS:
            return ProtocolError(ErrorCode.BAD_REQUEST, "the item is from the future")
        carried = item.frame
        if isinstance(carried, CarriedChat) and (
            fold_name(carried.from_) != fold_name(item.from_)
            or fold_name(carried.to) != fold_name(item.to)
        ):
            return ProtocolError(
                ErrorCode.BAD_REQUEST,
                "the chat inside is not from the item's sender to its recipient",
            )
        if not verify_mail(item, sender_key):
            return ProtocolError(
                ErrorCode.BAD_SIGNATURE, "the item's signature does not verify for its sender"
            )
        return None

    def _age(self, item: MailItem, now: int) -> int:
        """How old the item's sender name is here (since its first record here; 0 for a name
        unknown): its quota grows with that age."""
        entry = self.seed.directory.entries.get(fold_name(item.from_))
        return now - entry.claimed if entry is not None else 0

    def hand_mail(self, to: str, text: str) -> None:
        """Push an item just held to its recipient's socket here (after what was held before it,
        while that is being handed over)."""
        target = self.seed.bound.get(fold_name(to))
        if target is None:
            return
        if target.mail_backlog is None:
            target.out.push(chunks.mail_frame([text]))
        elif len(target.mail_backlog) < MAX_BACKLOG:  # beyond: handed over next session
            target.mail_backlog.append(text)

    def _hold(
        self,
        holding: Underway[Holding],
        item: MailItem,
        text: str,
        source: str | None,
        answer: Callable[[Holding | None], None] | None = None,
    ) -> None:
        """Follow a deposit (`text` the item's JSON, `source` the link it came on): a held item
        goes to the mesh as soon as it is decided, under the change number it is stored with, and
        once durable to its recipient, here or at its home seeds of a fleet. `answer` gets the
        durable outcome (None: not stored)."""
        seed = self.seed

        def decided(outcome: Holding) -> None:
            if outcome.held:
                seed.mesh.gossip("mail", text, outcome.revision or seed.next_rev(), source)

        def durable(outcome: Holding | None) -> None:
            if outcome is not None and outcome.held:
                self.hand_mail(item.to, text)
                if seed.fleet is not None:  # and over the bus to the fleet's seeds it is at
                    seed.fleet.forward_mail(item.to, text)
            if answer is not None:
                answer(outcome)

        holding.follow(decided, durable)

    def deposit(self, session: SessionSide, frame: Deposit) -> None:
        seed, item = self.seed, frame.item
        if session.folded is None:
            return self._fail(
                session, ErrorCode.NOT_REGISTERED, "deposit needs a registered socket", frame.id
            )
        if fold_name(item.from_) != session.folded:
            return self._fail(
                session,
                ErrorCode.BAD_REQUEST,
                "an item may only be deposited by its sender",
                frame.id,
            )
        now = now_ms()
        problem = self._item_problem(item, now, fresh=True)
        if problem is not None:
            return self._fail(session, problem.code, problem.message, frame.id)
        text = dump(item)
        source = f"addr {address_group(session.host)}"
        cap = seed.config.mail_per_address_bytes
        holding = seed.storage.mail.deposit(item, text, now, source, self._age(item, now), cap)

        def answer(outcome: Holding | None) -> None:
            """`deposited` once the item is durable (a second deposit of an item is a success)."""
            if outcome is None:
                self._fail(session, ErrorCode.INTERNAL, "the item could not be stored", frame.id)
            elif outcome.refusal is not None:
                seed.count("mail_quota")
                self._fail(session, ErrorCode.QUOTA, outcome.refusal, frame.id)
            else:
                session.out.push(dump(Deposited(type="deposited", id=frame.id)))

        self._hold(holding, item, text, None, answer)

    def accept_replica(self, item: MailItem, now: int, source: str) -> int:
        """An item from a peer, under the same checks; 1 when it is new here, 0 when held already.
        Its bytes spend the link's mail budget (before its signature is checked) and count to the
        link's share of the seed's mail."""
        seed = self.seed
        known = seed.storage.mail.known(item.to, ident_of(item))
        if known == "held":
            return 0  # held already: dropped before its signature is checked
        if known == "taken":
            raise ProtocolError(ErrorCode.BAD_REQUEST, "the item was taken already")
        text = dump(item)
        trusted = seed.trusted(source)
        loop_now = asyncio.get_running_loop().time()
        if not seed.links.allows(source, "mail", trusted, loop_now, len(text)):
            raise ProtocolError(ErrorCode.RATE_LIMITED, "over the link's mail budget")
        problem = self._item_problem(item, now, fresh=False)
        if problem is not None:
            raise problem
        cfg = seed.config
        cap = cfg.mail_per_peer_link_bytes if trusted else cfg.mail_per_stranger_link_bytes
        # a configured peer weighed the sender's age where the item was deposited; here every
        # name it brings is young (a seed that just synced would refuse its whole mesh's mail)
        age = None if trusted else self._age(item, now)
        holding = seed.storage.mail.deposit(item, text, now, f"link {source}", age, cap)
        self._hold(holding, item, text, source)
        decided = holding.decided
        if decided is None:  # decided in a fleet's stream, once (another seed may hold it)
            return 1
        if decided.refusal is not None:
            raise ProtocolError(ErrorCode.QUOTA, decided.refusal)
        return 1 if decided.held else 0

    async def hand_over_mail(self, session: SessionSide) -> None:
        """Everything held for a user whose session just proved itself, oldest first, in frames that fit."""
        if session.folded is None:
            session.mail_backlog = None
            return
        try:
            texts = await self.seed.storage.mail.pending(session.folded)
        except StoreError as exc:  # the held mail stays on disk for the next session
            log.warning("cannot read the mail held for %s: %s", session.folded, exc)
            texts = []
        finally:
            # whatever came meanwhile goes now, and later mail goes live again
            backlog, session.mail_backlog = session.mail_backlog or [], None
        handed = set(texts)
        texts += [text for text in backlog if text not in handed]
        for frame in chunks.mail_frames(texts, min(self.seed.config.max_frame, MAX_FRAME)):
            # paced by the socket's queue: a user that stops reading holds no copy of its mail
            if not await session.out.push_paced(frame):
                return

    # ------------------------------------------------------------------ takes

    def _take_problem(self, taken: Taken, now: int) -> ProtocolError | None:
        if len(taken.ids) > self.seed.config.take_max_ids:
            return ProtocolError(
                ErrorCode.BAD_REQUEST,
                f"a take names at most {self.seed.config.take_max_ids} ids",
            )
        key = self.seed.directory.key_of(taken.to)
        if key is None:
            return ProtocolError(ErrorCode.NOT_FOUND, f"no user named {taken.to!r} is registered")
        if taken.at > now + MINUTE_MS:
            return ProtocolError(ErrorCode.BAD_REQUEST, "the take is from the future")
        if taken.at + self.seed.mailbox.limits.keep_ms + MINUTE_MS < now:
            return ProtocolError(ErrorCode.BAD_REQUEST, "the take is past its lifetime")
        if not verify_take(taken, key):
            return ProtocolError(
                ErrorCode.BAD_SIGNATURE, "the take's signature does not verify for its recipient"
            )
        return None

    def _passed_on(self, text: str, source: str | None) -> Callable[[Deleted], None]:
        """What follows a take once decided: one that deletes something goes to the mesh, under
        the change number it is stored with (one that deletes nothing is neither kept nor passed
        on)."""
        seed = self.seed

        def decided(outcome: Deleted) -> None:
            if outcome.count:
                seed.mesh.gossip("taken", text, outcome.revision or seed.next_rev(), source)

        return decided

    def take(self, session: SessionSide, frame: Take) -> None:
        seed, taken = self.seed, frame.taken
        if session.folded is None:
            return self._fail(
                session, ErrorCode.NOT_REGISTERED, "take needs a registered socket", frame.id
            )
        if fold_name(taken.to) != session.folded:
            return self._fail(
                session, ErrorCode.BAD_REQUEST, "only the recipient takes its mail", frame.id
            )
        problem = self._take_problem(taken, now_ms())
        if problem is not None:
            return self._fail(session, problem.code, problem.message, frame.id)

        def answer(outcome: Deleted | None) -> None:
            """`took` only once the take is durable; a failed write is answered, so it comes again."""
            if outcome is None:
                self._fail(
                    session, ErrorCode.INTERNAL, "the take could not be stored; retry", frame.id
                )
            elif outcome.refusal is not None:
                seed.count("take_quota")
                self._fail(session, ErrorCode.QUOTA, outcome.refusal, frame.id)
            else:
                if not outcome.count:  # nothing here to delete: a success
                    seed.count("take_deletes_nothing")
                session.out.push(dump(Took(type="took", id=frame.id)))

        text = dump(taken)
        seed.storage.mail.take(taken, text).follow(self._passed_on(text, None), answer)

    def accept_take_replica(self, taken: Taken, now: int, source: str) -> int:
        """A take from a peer: 1 when it took something held here, 0 when it deletes nothing
        (then it is neither kept nor forwarded). Each take, whatever it deletes, spends the
        link's budget."""
        seed = self.seed
        if len(taken.ids) > seed.config.take_max_ids:
            raise ProtocolError(
                ErrorCode.BAD_REQUEST, f"a take names at most {seed.config.take_max_ids} ids"
            )
        loop_now = asyncio.get_running_loop().time()
        if not seed.links.allows(source, "takes", seed.trusted(source), loop_now):
            raise ProtocolError(ErrorCode.RATE_LIMITED, "over the link's take budget")
        mail = seed.storage.mail
        idents = ((fold_name(sender), mtype, mid) for sender, mtype, mid in taken.ids)
        if not any(mail.known(taken.to, ident) in ("held", None) for ident in idents):
            return 0  # deletes nothing held here: dropped before its signature is checked
        problem = self._take_problem(taken, now)
        if problem is not None:
            raise problem
        text = dump(taken)
        deleting = mail.take(taken, text)
        deleting.follow(self._passed_on(text, source), lambda _: None)
        decided = deleting.decided
        if decided is None:  # decided in a fleet's stream, once
            return 1
        if decided.refusal is not None:
            raise ProtocolError(ErrorCode.QUOTA, decided.refusal)
        return 1 if decided.count else 0
