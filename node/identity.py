"""Ed25519 identities: key files on disk, record signing and verification, fingerprints."""

from __future__ import annotations

import base64
import binascii
import hashlib
import logging
import os
import stat
from pathlib import Path

from nacl.exceptions import BadSignatureError
from nacl.signing import SigningKey, VerifyKey

from .errors import IdentityError
from .protocol import Record, record_signed_bytes

log = logging.getLogger(__name__)

KEY_FILE = "identity.key"


def b64(data: bytes) -> str:
    return binascii.b2a_base64(data, newline=False).decode("ascii")


def unb64(text: str) -> bytes:
    return base64.b64decode(text, validate=True)


def fingerprint(key_b64: str) -> str:
    """A short, human-comparable digest of a public key: 8 groups of 4 hex digits."""
    digest = hashlib.sha256(unb64(key_b64)).hexdigest()[:32]
    return " ".join(digest[i : i + 4] for i in range(0, 32, 4))


def secure_dir(path: Path) -> None:
    """Create a private data dir (0700), or tighten one that others can read, with a warning."""
    if not path.exists():
        path.mkdir(parents=True, mode=0o700)
        path.chmod(0o700)  # mkdir's mode is masked by the umask
        return
    mode = stat.S_IMODE(path.stat().st_mode)
    if mode & 0o077:
        log.warning("data dir %s was readable by others (mode %o); set to 0700", path, mode)
        path.chmod(0o700)


class Identity:
    """An Ed25519 key pair; signs records for users, and names a seed to its peers."""

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
            mode = stat.S_IMODE(path.stat().st_mode)
            if mode & 0o077:
                log.warning("key file %s was readable by others (mode %o); set to 0600", path, mode)
                path.chmod(0o600)
            try:
                seed = unb64(path.read_text().strip())
                return cls(SigningKey(seed))
            except Exception as exc:
                raise IdentityError(
                    f"key file {path} is damaged ({exc}); restore it from a backup, or move it "
                    "away to create a new identity (the name's owner key changes)"
                ) from None
        identity = cls.generate()
        tmp = path.with_suffix(".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as fh:
            fh.write(b64(bytes(identity.signing_key)) + "\n")
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
        return identity

    @property
    def fingerprint(self) -> str:
        return fingerprint(self.key)

    def sign_record(self, name: str, endpoint: str, seq: int) -> Record:
        sig = self.signing_key.sign(record_signed_bytes(name, self.key, endpoint, seq)).signature
        return Record(name=name, key=self.key, endpoint=endpoint, seq=seq, sig=b64(sig))


def verify_record(record: Record) -> bool:
    """True when the record's signature is valid for its own key (the name-to-key binding is the directory's job)."""
    try:
        VerifyKey(unb64(record.key)).verify(record.signed_bytes(), unb64(record.sig))
        return True
    except (BadSignatureError, ValueError):
        return False
