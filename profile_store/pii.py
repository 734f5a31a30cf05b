"""Personal data at rest: phones encrypted (AES-GCM), found through a keyed hash, masked on output.

Both keys are derived from QIANMIAN_SECRET_KEY with HKDF, one per purpose, so the lookup hash
reveals nothing about the encryption key and rotating the secret is one re-encryption job.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
from dataclasses import dataclass, field

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF


def _derive(secret: str, purpose: bytes) -> bytes:
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=b"qianmian-pii-v1", info=purpose).derive(
        secret.encode("utf-8")
    )


@dataclass(frozen=True)
class PiiVault:
    """Encrypts, decrypts and hashes identifiers that are personal data (phones)."""

    secret_key: str
    _enc_key: bytes = field(init=False, repr=False)
    _hash_key: bytes = field(init=False, repr=False)

    def __post_init__(self) -> None:
        if not self.secret_key:
            raise ValueError("QIANMIAN_SECRET_KEY is empty: personal data cannot be protected")
        object.__setattr__(self, "_enc_key", _derive(self.secret_key, b"encrypt"))
        object.__setattr__(self, "_hash_key", _derive(self.secret_key, b"lookup"))

    def lookup_hash(self, value: str) -> str:
        """Deterministic keyed hash: equal phones give equal hashes, nothing else can be read."""
        return hmac.new(self._hash_key, value.encode("utf-8"), hashlib.sha256).hexdigest()[:40]

    def encrypt(self, value: str) -> str:
        nonce = os.urandom(12)
        sealed = AESGCM(self._enc_key).encrypt(nonce, value.encode("utf-8"), b"phone")
        return base64.b64encode(nonce + sealed).decode("ascii")

    def decrypt(self, token: str) -> str:
        raw = base64.b64decode(token)
        return AESGCM(self._enc_key).decrypt(raw[:12], raw[12:], b"phone").decode("utf-8")


def mask_phone(phone: str) -> str:
    """13812345678 → 138****5678."""
    if len(phone) < 7:
        return "*" * len(phone)
    return f"{phone[:3]}****{phone[-4:]}"


def mask_name(name: str) -> str:
    """张三 → 张*, 欧阳娜娜 → 欧***; a one-character name stays as it is."""
    name = name.strip()
    if len(name) <= 1:
        return name
    return name[0] + "*" * (len(name) - 1)
