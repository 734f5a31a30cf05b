"""Tencent callback crypto (WeCom and official-account "safe mode"), on `cryptography`.

Our own implementation of tencent.md §Callbacks, so the edge does not depend on a requests-era
library; wechatpy's implementation is used in tests as an independent check.

- signature: sha1 over the sorted strings (token, timestamp, nonce[, encrypt]), hex.
- cipher: AES-256-CBC, key = b64decode(EncodingAESKey + "="), IV = key[:16], PKCS#7 to 32 bytes.
- plaintext: 16 random bytes + 4-byte big-endian length + message + receive id
  (the corp id for WeCom, the appid for an official account).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import os
import struct

from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

BLOCK = 32  # Tencent pads to 32 bytes, not the AES block size of 16


class CallbackCryptoError(Exception):
    """Base of everything that makes a callback unusable on the crypto level."""


class SignatureError(CallbackCryptoError):
    """The signature does not match: the request is not from Tencent (→ HTTP 403)."""


class DecryptError(CallbackCryptoError):
    """The ciphertext is not valid base64, not padded, or not for this receiver (→ HTTP 400)."""


def signature(*parts: str) -> str:
    """sha1 over the sorted parts, as Tencent computes `signature` / `msg_signature`."""
    return hashlib.sha1("".join(sorted(parts)).encode("utf-8")).hexdigest()


def check_signature(expected: str, *parts: str) -> None:
    """Raise SignatureError unless `expected` is the signature of `parts` (constant time)."""
    if not hmac.compare_digest(signature(*parts).encode("ascii"), expected.encode("utf-8", "replace")):
        raise SignatureError("signature mismatch")


def check_plain_signature(token: str, sig: str, timestamp: str, nonce: str) -> None:
    """Official-account plain mode: sha1(sort(token, timestamp, nonce))."""
    check_signature(sig, token, timestamp, nonce)


def _pad(data: bytes) -> bytes:
    amount = BLOCK - len(data) % BLOCK
    return data + bytes([amount]) * amount


def _unpad(data: bytes) -> bytes:
    if not data:
        raise DecryptError("empty plaintext")
    amount = data[-1]
    if not 1 <= amount <= BLOCK or data[-amount:] != bytes([amount]) * amount:
        raise DecryptError("bad padding")
    return data[:-amount]


class MessageCrypto:
    """Encrypts and decrypts the messages of one receiver (a corp id or an OA appid)."""

    def __init__(self, token: str, encoding_aes_key: str, receive_id: str) -> None:
        try:
            key = base64.b64decode(encoding_aes_key + "=", validate=True)
        except binascii.Error as exc:
            raise ValueError("EncodingAESKey is not base64") from exc
        if len(key) != 32:
            raise ValueError("EncodingAESKey must be 43 characters (32 bytes)")
        self.token = token
        self.receive_id = receive_id
        self._key = key
        # Key and IV (the key's first 16 bytes) never change: one Cipher, a fresh context per message.
        self._aes = Cipher(algorithms.AES(key), modes.CBC(key[:16]))

    def _cipher(self) -> Cipher[modes.CBC]:
        return self._aes

    # ------------------------------------------------------------------ decrypt (callbacks in)

    def check(self, msg_signature: str, timestamp: str, nonce: str, encrypt: str) -> None:
        check_signature(msg_signature, self.token, timestamp, nonce, encrypt)

    def decrypt(self, encrypt: str) -> str:
        """The clear message inside `encrypt`; DecryptError when it is not ours or broken."""
        try:
            raw = base64.b64decode(encrypt, validate=True)
        except (binascii.Error, ValueError) as exc:
            raise DecryptError("ciphertext is not base64") from exc
        if not raw or len(raw) % 16:
            raise DecryptError("ciphertext length is not a multiple of the block size")
        decryptor = self._cipher().decryptor()
        plain = _unpad(decryptor.update(raw) + decryptor.finalize())
        if len(plain) < 20:
            raise DecryptError("plaintext too short")
        (length,) = struct.unpack(">I", plain[16:20])
        body, receive_id = plain[20 : 20 + length], plain[20 + length :]
        if len(body) != length:
            raise DecryptError("declared length exceeds the plaintext")
        if not hmac.compare_digest(receive_id, self.receive_id.encode("utf-8")):
            raise DecryptError("message is for another receiver")
        try:
            return body.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise DecryptError("message is not UTF-8") from exc

    def verify_and_decrypt(self, msg_signature: str, timestamp: str, nonce: str, encrypt: str) -> str:
        self.check(msg_signature, timestamp, nonce, encrypt)
        return self.decrypt(encrypt)

    # ------------------------------------------------------------------ encrypt (passive replies)

    def encrypt(self, message: str, *, random_prefix: bytes | None = None) -> str:
        prefix = random_prefix if random_prefix is not None else os.urandom(16)
        if len(prefix) != 16:
            raise ValueError("random prefix must be 16 bytes")
        body = message.encode("utf-8")
        plain = prefix + struct.pack(">I", len(body)) + body + self.receive_id.encode("utf-8")
        encryptor = self._cipher().encryptor()
        return base64.b64encode(encryptor.update(_pad(plain)) + encryptor.finalize()).decode("ascii")

    def encrypt_reply(self, message: str, *, timestamp: str, nonce: str, random_prefix: bytes | None = None) -> str:
        """The XML envelope of a passive (encrypted) reply, signed."""
        encrypt = self.encrypt(message, random_prefix=random_prefix)
        sig = signature(self.token, timestamp, nonce, encrypt)
        return (
            "<xml>\n"
            f"<Encrypt><![CDATA[{encrypt}]]></Encrypt>\n"
            f"<MsgSignature><![CDATA[{sig}]]></MsgSignature>\n"
            f"<TimeStamp>{timestamp}</TimeStamp>\n"
            f"<Nonce><![CDATA[{nonce}]]></Nonce>\n"
            "</xml>"
        )
