"""End-to-end encryption of chat messages: NaCl boxes between Ed25519 identities, one Box per peer.

Computing a Box costs as much as ~5 encrypt+decrypt pairs, so each peer key's Box is computed once.
"""

from __future__ import annotations

import json
import os
from typing import Any

from nacl.exceptions import CryptoError
from nacl.public import Box, PrivateKey, PublicKey
from nacl.signing import VerifyKey
from pydantic import ValidationError

from ..errors import ErrorCode, ProtocolError
from ..wire.fastcodec import chat_text, plain_bytes
from ..wire.names import fold_name
from ..wire.protocol import CHAT_PLAIN, Chat, ChatPlain
from .keys import Identity, b64, unb64
from .signing import ACK_PREFIX, ack_bytes


class Boxes:
    """This identity's boxes with every peer key it has met, each computed once."""

    def __init__(self, identity: Identity) -> None:
        self.secret: PrivateKey = identity.signing_key.to_curve25519_private_key()
        self.cache: dict[str, Box] = {}

    def box(self, peer_key: str) -> Box:
        box = self.cache.get(peer_key)
        if box is None:
            public = PublicKey(bytes(VerifyKey(unb64(peer_key)).to_curve25519_public_key()))
            box = self.cache[peer_key] = Box(self.secret, public)
        return box

    def seal(
        self,
        peer_key: str,
        msg_id: str,
        sender: str,
        recipient: str,
        ts: int,
        text: str,
        extra: dict[str, Any] | None = None,
    ) -> str:
        """A `chat` frame for our own, already valid fields (built directly: this is the hot path).

        `extra`: more plaintext fields (r3: a group frame's `kind` and `group`)."""
        plain = plain_bytes(msg_id, sender, recipient, ts, text, extra or None)
        nonce = os.urandom(Box.NONCE_SIZE)
        sealed = self.box(peer_key).encrypt(plain, nonce).ciphertext
        return chat_text(msg_id, sender, recipient, b64(nonce), b64(sealed))

    def open(self, peer_key: str, chat: Chat) -> ChatPlain:
        """Decrypt and check the inner fields against the frame; ProtocolError bad_box otherwise."""
        try:
            plain = self.box(peer_key).decrypt(unb64(chat.box), unb64(chat.nonce))
        except (CryptoError, ValueError):
            raise ProtocolError(
                ErrorCode.BAD_BOX, "the box does not open with the sender's key", chat.id
            ) from None
        try:
            inner = CHAT_PLAIN.validate_json(plain)
        except ValidationError:
            raise ProtocolError(
                ErrorCode.BAD_BOX, "the box holds no valid message", chat.id
            ) from None
        if (
            inner.id != chat.id
            or fold_name(inner.from_) != fold_name(chat.from_)
            or fold_name(inner.to) != fold_name(chat.to)
        ):
            raise ProtocolError(
                ErrorCode.BAD_BOX, "the box's id, from or to differ from the frame's", chat.id
            )
        return inner

    def ack_proof(self, sender_key: str, sender: str, msg_id: str, recipient: str) -> str:
        """The proof an ack carries: only the recipient could box these bytes to the sender's key."""
        plain = ack_bytes(sender, msg_id, recipient)
        nonce = os.urandom(Box.NONCE_SIZE)
        return b64(nonce + self.box(sender_key).encrypt(plain, nonce).ciphertext)

    def proof_holds(
        self, recipient_key: str, proof: str, sender: str, msg_id: str, recipient: str
    ) -> bool:
        """True when `proof` opens with the recipient's key to this message's sender, id and recipient."""
        try:
            raw = unb64(proof)
            plain = self.box(recipient_key).decrypt(raw[Box.NONCE_SIZE :], raw[: Box.NONCE_SIZE])
        except (CryptoError, ValueError):
            return False
        if plain == ack_bytes(sender, msg_id, recipient):
            return True  # as we spell the names; below, the same names in other letter cases
        if not plain.startswith(ACK_PREFIX):
            return False
        try:
            said = json.loads(plain[len(ACK_PREFIX) :])
        except ValueError:
            return False
        return (
            isinstance(said, dict)
            and said.get("id") == msg_id
            and isinstance(said.get("from"), str)
            and isinstance(said.get("to"), str)
            and fold_name(said["from"]) == fold_name(sender)
            and fold_name(said["to"]) == fold_name(recipient)
        )
