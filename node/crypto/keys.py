"""Ed25519 identities: key files on disk, base64 as the wire writes it, human-comparable fingerprints."""

from __future__ import annotations

import base64
import binascii
import hashlib
from pathlib import Path

from nacl.signing import SigningKey

from ..errors import IdentityError
from ..storage.files import secure_dir, tighten_file, write_private

KEY_FILE = "identity.key"


def b64(data: bytes) -> str:
    return binascii.b2a_base64(data, newline=False).decode("ascii")


def unb64(text: str) -> bytes:
    return base64.b64decode(text, validate=True)


def fingerprint(key_b64: str) -> str:
    """A short, human-comparable digest of a public key: 8 groups of 4 hex digits."""
    digest = hashlib.sha256(unb64(key_b64)).hexdigest()[:32]
    return " ".join(digest[i : i + 4] for i in range(0, 32, 4))


class Identity:
    """An Ed25519 key pair: a user's name is owned by it, and a seed is it."""

    def __init__(self, signing_key: SigningKey) -> None:
        self.signing_key = signing_key
        self.verify_key = signing_key.verify_key
        self.key = b64(bytes(self.verify_key))

    @classmethod
    def generate(cls) -> Identity:
        return cls(SigningKey.generate())

    @classmethod
    def load_or_create(cls, data_dir: Path) -> Identity:
        """Read the key in `data_dir`, creating it (mode 0600) on first start."""
        secure_dir(data_dir)
        path = data_dir / KEY_FILE
        if path.exists():
            tighten_file(path)
            try:
                seed = unb64(path.read_text().strip())
                return cls(SigningKey(seed))
            except (OSError, ValueError, TypeError) as exc:  # unreadable, not base64, wrong length
                raise IdentityError(
                    f"key file {path} is damaged ({exc}); restore it from a backup, or move it "
                    "away to create a new identity (the name's owner key changes)"
                ) from None
        identity = cls.generate()
        write_private(path, b64(bytes(identity.signing_key)) + "\n")
        return identity

    @property
    def fingerprint(self) -> str:
        return fingerprint(self.key)

    def sign(self, data: bytes) -> str:
        """The base64 Ed25519 signature of `data` (already prefixed with its purpose)."""
        return b64(self.signing_key.sign(data).signature)
