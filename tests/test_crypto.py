"""Our callback crypto against wechatpy's (an independent implementation) and its published
test vectors (wechatpy tests/test_crypto.py)."""

from __future__ import annotations

import base64
import hashlib
import re
import struct

import pytest
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from hypothesis import given, settings
from hypothesis import strategies as st
from wechatpy.crypto import WeChatCrypto as OACrypto
from wechatpy.enterprise.crypto import WeChatCrypto as WorkCrypto
from wechatpy.exceptions import InvalidSignatureException

from bot.crypto import (
    DecryptError,
    MessageCrypto,
    SignatureError,
    check_plain_signature,
    signature,
)

# wechatpy's vectors
TOKEN = "123456"
AES_KEY = "kWxPEV2UEDyxWpmPdKC3F4dgPDmOvfKX1HGnEUDS1aR"
CORP_ID = "wx49f0ab532d5d035a"
ENCRYPTED_XML_ENCRYPT = (
    "RgqEoJj5A4EMYlLvWO1F86ioRjZfaex/gePD0gOXTxpsq5Yj4GNglrBb8I2BAJVODGajiFnXBu7mCPatfjsu6IHCrsTyeDXz"
    "F6Bv283dGymzxh6ydJRvZsryDyZbLTE7rhnus50qGPMfp2wASFlzEgMW9z1ef/RD8XzaFYgm7iTdaXpXaG4+BiYyolBug/gYNx"
    "410cvkKR2/nPwBiT+P4hIiOAQqGp/TywZBtDh1yCF2KOd0gpiMZ5jSw3e29mTvmUHzkVQiMS6td7vXUaWOMZnYZlF3So2SjHn"
    "wh4jYFxdgpkHHqIrH/54SNdshoQgWYEvccTKe7FS709/5t6NMxuGhcUGAPOQipvWTT4dShyqio7mlsl5noTrb++x6En749zCpQ"
    "VhDpbV6GDnTbcX2e8K9QaNWHp91eBdCRxthuL0="
)
ECHO_STR = "4ByGGj+sVCYcvGeQYhaKIk1o0pQRNbRjxybjTGblXrBaXlTXeOo1+bXFXDQQb1o6co6Yh9Bv41n7hOchLF6p+Q=="
REPLY = """<xml>
<MsgType><![CDATA[text]]></MsgType>
<Content><![CDATA[test]]></Content>
<FromUserName><![CDATA[wx49f0ab532d5d035a]]></FromUserName>
<ToUserName><![CDATA[messense]]></ToUserName>
<AgentID>1</AgentID>
<CreateTime>1411525903</CreateTime>
</xml>"""
EXPECTED_REPLY = """<xml>
<Encrypt><![CDATA[9s4gMv99m88kKTh/H8IdkOiMg6bisoy3ypwy9H4hvSPe9nsGaqyw5hhSjdYbcrKk+j3nba4HMOTzHrluLBYqxgNcBqGsL8GqxlhZgURnAtObvesEl5nZ+uBE8bviY0LWke8Zy9V/QYKxNV2FqllNXcfmstttyIkMKCCmVbCFM2JTF5wY0nFhHZSjPUL2Q1qvSUCUld+/WIXrx0oyKQmpB6o8NRrrNrsDf03oxI1p9FxUgMnwKKZeOA/uu+2IEvEBtb7muXsVbwbgX05UPPJvFurDXafG0RQyPR+mf1nDnAtQmmNOuiR5MIkdQ39xn1vWwi1O5oazPoQJz0nTYjxxEE8kv3kFxtAGVRe3ypD3WeK2XeFYFMNMpatF9XiKzHo3]]></Encrypt>
<MsgSignature><![CDATA[407518b7649e86ef23978113f92d27afa9296533]]></MsgSignature>
<TimeStamp>1411525903</TimeStamp>
<Nonce><![CDATA[461056294]]></Nonce>
</xml>"""


def ours() -> MessageCrypto:
    return MessageCrypto(TOKEN, AES_KEY, CORP_ID)


def _encrypt_of(envelope: str) -> str:
    match = re.search(r"<Encrypt><!\[CDATA\[(.*?)\]\]></Encrypt>", envelope)
    assert match
    return match.group(1)


def test_decrypts_wechatpy_vector() -> None:
    plain = ours().verify_and_decrypt(
        "74d92dfeb87ba7c714f89d98870ae5eb62dff26d", "1411525903", "461056294", ENCRYPTED_XML_ENCRYPT
    )
    assert "<Content><![CDATA[test]]></Content>" in plain
    assert "<FromUserName><![CDATA[messense]]></FromUserName>" in plain


def test_url_check_vector_matches_wechatpy() -> None:
    args = ("dd6b9c95b495b3f7e2901bfbc76c664930ffdb96", "1411443780", "437374425", ECHO_STR)
    theirs = WorkCrypto(TOKEN, AES_KEY, CORP_ID).check_signature(*args)
    assert ours().verify_and_decrypt(*args) == (theirs.decode() if isinstance(theirs, bytes) else theirs)
    with pytest.raises(SignatureError):  # the vector's negative case: another nonce
        ours().verify_and_decrypt(args[0], args[1], "437374424", ECHO_STR)


def test_encrypt_reproduces_wechatpy_vector() -> None:
    envelope = ours().encrypt_reply(REPLY, timestamp="1411525903", nonce="461056294", random_prefix=b"1234567890123456")
    assert envelope == EXPECTED_REPLY


@settings(max_examples=25, deadline=None)
@given(message=st.text(min_size=0, max_size=300).filter(lambda s: "\x00" not in s and "\r" not in s))
def test_round_trip_with_wechatpy_both_ways(message: str) -> None:
    body = f"<xml><Content><![CDATA[{message}]]></Content></xml>"
    work = WorkCrypto(TOKEN, AES_KEY, CORP_ID)
    # ours → theirs
    envelope = ours().encrypt_reply(body, timestamp="1700000000", nonce="n1")
    assert _as_text(work.decrypt_message(envelope, _sig_of(envelope), "1700000000", "n1")) == body
    # theirs → ours
    theirs = work.encrypt_message(body, "n2", "1700000001")
    encrypt = _encrypt_of(theirs)
    assert ours().verify_and_decrypt(_sig_of(theirs), "1700000001", "n2", encrypt) == body


def test_official_account_round_trip_with_wechatpy() -> None:
    appid = "wxoa0000000000001"
    oa_ours = MessageCrypto("oatoken", AES_KEY, appid)
    oa_theirs = OACrypto("oatoken", AES_KEY, appid)
    body = "<xml><Event><![CDATA[subscribe]]></Event><Content>关注</Content></xml>"
    envelope = oa_ours.encrypt_reply(body, timestamp="1700000000", nonce="x")
    assert _as_text(oa_theirs.decrypt_message(envelope, _sig_of(envelope), "1700000000", "x")) == body
    theirs = oa_theirs.encrypt_message(body, "y", "1700000002")
    assert oa_ours.verify_and_decrypt(_sig_of(theirs), "1700000002", "y", _encrypt_of(theirs)) == body
    # wechatpy refuses our signature when one character of the ciphertext changes, and so do we
    forged = envelope.replace(_sig_of(envelope), "0" * 40)
    with pytest.raises(InvalidSignatureException):
        oa_theirs.decrypt_message(forged, "0" * 40, "1700000000", "x")


def test_signature_is_sha1_of_sorted_parts() -> None:
    parts = ["tok", "1700000000", "nonce", "ENCRYPTED"]
    assert signature(*parts) == hashlib.sha1("".join(sorted(parts)).encode()).hexdigest()
    expected = hashlib.sha1("".join(sorted(["tok", "1700000000", "nonce"])).encode()).hexdigest()
    check_plain_signature("tok", expected, "1700000000", "nonce")
    with pytest.raises(SignatureError):
        check_plain_signature("tok", expected, "1700000001", "nonce")
    with pytest.raises(SignatureError):
        check_plain_signature("tok", expected.upper() + "é", "1700000000", "nonce")


# ---------------------------------------------------------------------------- bad ciphertexts


def _raw_encrypt(plain: bytes) -> str:
    """AES-CBC with the vector key, no padding logic of ours (to build broken plaintexts)."""
    key = base64.b64decode(AES_KEY + "=")
    encryptor = Cipher(algorithms.AES(key), modes.CBC(key[:16])).encryptor()
    return base64.b64encode(encryptor.update(plain) + encryptor.finalize()).decode()


def _framed(message: bytes, receive_id: bytes) -> bytes:
    return b"R" * 16 + struct.pack(">I", len(message)) + message + receive_id


def _pkcs7(data: bytes, block: int = 32) -> bytes:
    n = block - len(data) % block
    return data + bytes([n]) * n


def test_other_receiver_is_refused() -> None:
    other = MessageCrypto(TOKEN, AES_KEY, "wwanothercorp").encrypt("<xml/>")
    with pytest.raises(DecryptError, match="another receiver"):
        ours().decrypt(other)


def test_bad_base64_is_refused() -> None:
    with pytest.raises(DecryptError, match="base64"):
        ours().decrypt("not base64 at all!!")


def test_truncated_ciphertext_is_refused() -> None:
    good = base64.b64decode(ours().encrypt("<xml>hello</xml>"))
    with pytest.raises(DecryptError, match="multiple"):
        ours().decrypt(base64.b64encode(good[:-5]).decode())
    with pytest.raises(DecryptError):  # whole blocks cut off: padding or length no longer fit
        ours().decrypt(base64.b64encode(good[:16]).decode())


def test_bad_padding_is_refused() -> None:
    plain = _framed(b"<xml/>", CORP_ID.encode())
    padded = _pkcs7(plain)
    broken = padded[:-1] + bytes([33])  # a pad byte over 32 is not PKCS#7-to-32
    with pytest.raises(DecryptError, match="padding"):
        ours().decrypt(_raw_encrypt(broken))
    inconsistent = padded[:-2] + bytes([7, padded[-1]]) if padded[-1] > 1 else None
    if inconsistent is not None:
        with pytest.raises(DecryptError, match="padding"):
            ours().decrypt(_raw_encrypt(inconsistent))


def test_length_beyond_plaintext_is_refused() -> None:
    plain = b"R" * 16 + struct.pack(">I", 10_000) + b"<xml/>" + CORP_ID.encode()
    with pytest.raises(DecryptError, match="length"):
        ours().decrypt(_raw_encrypt(_pkcs7(plain)))


def test_padding_to_32_matches_wechatpy() -> None:
    # 16 + 4 + 8 + 4 = 32 bytes of plaintext: a full 32-byte block of padding follows
    crypto = MessageCrypto(TOKEN, AES_KEY, "corp")
    encrypted = crypto.encrypt("12345678", random_prefix=b"0" * 16)
    assert len(base64.b64decode(encrypted)) == 64
    theirs = WorkCrypto(TOKEN, AES_KEY, "corp").encrypt_message("12345678", "n", "1")
    assert len(base64.b64decode(_encrypt_of(theirs))) == 64


def test_bad_key_is_refused_at_configuration() -> None:
    with pytest.raises(ValueError):
        MessageCrypto(TOKEN, "short", CORP_ID)
    with pytest.raises(ValueError):
        MessageCrypto(TOKEN, "!" * 43, CORP_ID)


def _sig_of(envelope: str) -> str:
    match = re.search(r"<MsgSignature><!\[CDATA\[(.*?)\]\]></MsgSignature>", envelope)
    assert match
    return match.group(1)


def _as_text(value: str | bytes) -> str:
    return value.decode() if isinstance(value, bytes) else value
