"""WeCom callback crypto against WeCom's published vectors and an independent implementation here
(built from `cryptography` primitives and hashlib, not from wecom.crypto)."""

from __future__ import annotations

import base64
import hashlib
import os
import struct

import pytest
from cryptography.hazmat.primitives import padding
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from wecom.callback import CallbackRejected, CallbackVerifier, SeenIds, parse_xml
from wecom.crypto import (
    DECRYPT_ERROR,
    ILLEGAL_AES_KEY,
    RECEIVE_ID_ERROR,
    SIGNATURE_ERROR,
    CryptoError,
    WeComCrypto,
    signature,
)

# WeCom's documented example company (developer.work.weixin.qq.com, 加解密方案说明 / sample code).
DOC_TOKEN = "QDG6eK"
DOC_CORP = "wx5823bf96d3bd56c7"
DOC_AES = "jWmYm7qr5nMoAUwZRjGtBxmz3KA1tkAj3ykkR6q2B2C"
DOC_POST = ("477715d11cdb4164915debcba66cb864d751f3e6", "1409659813", "1372623149",
            "RypEvHKD8QQKFhvQ6QleEB4J58tiPdvo+rtK1I9qca6aM/wvqnLSV5zEPeusUiX5L5X/0lWfrf0QADHHhGd3QczcdCUpj911L3vg3W/s"
            "YYvuJTs3TUUkSUXxaccAS0qhxchrRYt66wiSpGLYL42aM6A8dTT+6k4aSknmPj48kzJs8qLjvd4Xgpue06DOdnLxAUHzM6+kDZ+HMZfJ"
            "YuR+LtwGc2hgf5gsijff0ekUNXZiqATP7PF5mZxZ3Izoun1s4zG4LUMnvw2r+KqCKIw+3IQH03v+BCA9nMELNqbSf6tiWSrXJB3LAVGU"
            "callcrw8V2t9EL4EhzJWrQUax5wLVMNS0+rUPA3k22Ncx4XXZS9o0MBH27Bo6BpNelZpS+/uh9KsNlY6bHCmJU9p8g7m3fVKn28H3KDY"
            "A5Pl/T8Z1ptDAVe0lXdQ2YoyyH2uyPIGHBZZIs2pDBS8R07+qN+E7Q==")
DOC_PLAIN = ("<xml><ToUserName><![CDATA[wx5823bf96d3bd56c7]]></ToUserName>\n"
             "<FromUserName><![CDATA[mycreate]]></FromUserName>\n<CreateTime>1409659813</CreateTime>\n"
             "<MsgType><![CDATA[text]]></MsgType>\n<Content><![CDATA[hello]]></Content>\n"
             "<MsgId>4561255354251345929</MsgId>\n<AgentID>218</AgentID>\n</xml>")
DOC_GET = ("5c45ff5e21c57e6ad56bac8758b79b1d9ac89fd3", "1409659589", "263014780",
           "P9nAzCzyDtyTWESHep1vC5X9xho/qYX3Zpb4yKa9SKld1DsH3Iyt3tP3zNdtp+4RPcs8TgAE7OaBO+FZXvnaqQ==")


def independent_encrypt(aes_key: str, message: bytes, receive_id: bytes, random16: bytes) -> str:
    """WeCom's scheme written out again with cryptography's own PKCS7 (256-bit = 32-byte blocks)."""
    key = base64.b64decode(aes_key + "=")
    padder = padding.PKCS7(256).padder()
    data = padder.update(random16 + struct.pack(">I", len(message)) + message + receive_id) + padder.finalize()
    enc = Cipher(algorithms.AES256(key), modes.CBC(key[:16])).encryptor()
    return base64.b64encode(enc.update(data) + enc.finalize()).decode()


def independent_decrypt(aes_key: str, encrypted: str) -> tuple[bytes, bytes]:
    key = base64.b64decode(aes_key + "=")
    dec = Cipher(algorithms.AES256(key), modes.CBC(key[:16])).decryptor()
    raw = dec.update(base64.b64decode(encrypted)) + dec.finalize()
    unpadder = padding.PKCS7(256).unpadder()
    body = (unpadder.update(raw) + unpadder.finalize())[16:]
    n = struct.unpack(">I", body[:4])[0]
    return body[4:4 + n], body[4 + n:]


def test_documented_post_vector_decrypts_to_the_documented_message() -> None:
    crypto = WeComCrypto(DOC_TOKEN, DOC_AES, DOC_CORP)
    msg_signature, timestamp, nonce, encrypt = DOC_POST
    assert crypto.signature(timestamp, nonce, encrypt) == msg_signature
    assert crypto.verify_and_decrypt(msg_signature, timestamp, nonce, encrypt) == DOC_PLAIN


def test_documented_url_verification_signature() -> None:
    msg_signature, timestamp, nonce, echostr = DOC_GET
    assert signature(DOC_TOKEN, timestamp, nonce, echostr) == msg_signature
    plain = WeComCrypto(DOC_TOKEN, DOC_AES, DOC_CORP).verify_and_decrypt(*DOC_GET)
    assert plain.isdigit()  # WeCom's echostr plaintext is a random number string
    assert independent_decrypt(DOC_AES, echostr) == (plain.encode(), DOC_CORP.encode())


def test_signature_is_sha1_of_the_sorted_parts() -> None:
    parts = ["token", "1700000000", "nonce-1", "CIPHER+/="]
    assert signature(*parts) == hashlib.sha1("".join(sorted(parts)).encode()).hexdigest()
    # known answer, computed once by hand: sha1("1700000000CIPHER+/=nonce-1token")
    assert signature(*parts) == hashlib.sha1(b"1700000000CIPHER+/=nonce-1token").hexdigest()


@pytest.mark.parametrize("message", ["", "a", "x" * 11, "y" * 12, "z" * 44, "中文消息：这个多少钱？" * 7])
def test_both_directions_against_the_independent_implementation(message: str) -> None:
    key = base64.b64encode(os.urandom(32)).decode().rstrip("=")  # a fresh 43-character EncodingAESKey
    crypto = WeComCrypto("t", key, "corp-123")
    r16 = os.urandom(16)
    ours = crypto.encrypt(message, r16)
    theirs = independent_encrypt(key, message.encode(), b"corp-123", r16)
    assert ours == theirs  # same random bytes: byte-identical ciphertext
    assert crypto.decrypt(theirs) == message
    assert independent_decrypt(key, ours) == (message.encode(), b"corp-123")
    assert len(base64.b64decode(ours)) % 32 == 0


def test_padding_block_is_32_bytes() -> None:
    crypto = WeComCrypto("t", DOC_AES, "")
    # 16 random + 4 length + 12 message = 32 bytes: a whole extra block of padding (value 32)
    raw = base64.b64decode(crypto.encrypt("x" * 12, bytes(16)))
    assert len(raw) == 64
    key = base64.b64decode(DOC_AES + "=")
    dec = Cipher(algorithms.AES(key), modes.CBC(key[:16])).decryptor()
    plain = dec.update(raw) + dec.finalize()
    assert plain[-32:] == bytes([32]) * 32


def test_rejections() -> None:
    crypto = WeComCrypto(DOC_TOKEN, DOC_AES, DOC_CORP)
    _msg_signature, timestamp, nonce, encrypt = DOC_POST
    with pytest.raises(CryptoError) as e1:
        crypto.verify_and_decrypt("0" * 40, timestamp, nonce, encrypt)
    assert e1.value.code == SIGNATURE_ERROR
    with pytest.raises(CryptoError) as e2:
        WeComCrypto(DOC_TOKEN, DOC_AES, "another-corp").decrypt(encrypt)
    assert e2.value.code == RECEIVE_ID_ERROR
    other_key = "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG"
    with pytest.raises(CryptoError) as e3:
        WeComCrypto(DOC_TOKEN, other_key, DOC_CORP).decrypt(encrypt)
    assert e3.value.code in (DECRYPT_ERROR, RECEIVE_ID_ERROR, -40008)
    with pytest.raises(CryptoError) as e4:
        WeComCrypto(DOC_TOKEN, "short", DOC_CORP)
    assert e4.value.code == ILLEGAL_AES_KEY
    with pytest.raises(CryptoError):
        crypto.decrypt("not base64!!")
    tampered = base64.b64decode(encrypt)
    tampered = tampered[:-1] + bytes([tampered[-1] ^ 1])
    with pytest.raises(CryptoError):
        crypto.decrypt(base64.b64encode(tampered).decode())


def _post_xml(crypto: WeComCrypto, plain: str, timestamp: str, nonce: str) -> tuple[str, str]:
    encrypt = crypto.encrypt(plain)
    return crypto.signature(timestamp, nonce, encrypt), (
        f"<xml><ToUserName><![CDATA[{crypto.receive_id}]]></ToUserName><Encrypt><![CDATA[{encrypt}]]></Encrypt>"
        "<AgentID><![CDATA[1000002]]></AgentID></xml>")


def test_verifier_freshness_and_duplicates() -> None:
    crypto = WeComCrypto("tok", DOC_AES, "ww1")
    verifier = CallbackVerifier(crypto, max_skew_s=300, seen=SeenIds())
    now = 1_780_000_000
    plain = ("<xml><ToUserName>ww1</ToUserName><FromUserName>wmCustomer1</FromUserName><CreateTime>1780000000"
             "</CreateTime><MsgType>text</MsgType><Content>这个多少钱</Content><MsgId>42</MsgId></xml>")
    sig, body = _post_xml(crypto, plain, str(now), "n1")
    msg = verifier.open_message(sig, str(now), "n1", body, now=now + 10)
    assert msg is not None and msg.text == "这个多少钱" and msg.sender == "wmCustomer1"
    # WeCom retries with a new signature/nonce: still the same MsgId, processed once
    sig2, body2 = _post_xml(crypto, plain, str(now + 5), "n2")
    assert verifier.open_message(sig2, str(now + 5), "n2", body2, now=now + 12) is None
    verifier.seen.forget(msg.dedupe_key)
    assert verifier.open_message(sig2, str(now + 5), "n2", body2, now=now + 12) is not None
    with pytest.raises(CallbackRejected) as stale:
        verifier.open_message(sig, str(now), "n1", body, now=now + 301)
    assert stale.value.status == 401 and "stale" in str(stale.value)
    with pytest.raises(CallbackRejected) as future:
        verifier.verify_url(sig, str(now + 1000), "n1", "x", now=now)
    assert future.value.status == 401
    with pytest.raises(CallbackRejected) as bad_sig:
        verifier.open_message("f" * 40, str(now), "n1", body, now=now)
    assert bad_sig.value.status == 401


def test_events_without_msgid_dedupe_on_sender_time_event() -> None:
    crypto = WeComCrypto("tok", DOC_AES, "ww1")
    verifier = CallbackVerifier(crypto)
    now = 1_780_000_000
    plain = ("<xml><ToUserName>ww1</ToUserName><FromUserName>sys</FromUserName><CreateTime>1780000000</CreateTime>"
             "<MsgType>event</MsgType><Event>change_external_contact</Event></xml>")
    sig, body = _post_xml(crypto, plain, str(now), "n")
    first = verifier.open_message(sig, str(now), "n", body, now=now)
    assert first is not None and first.dedupe_key == "event:sys:1780000000:change_external_contact"
    assert verifier.open_message(sig, str(now), "n", body, now=now) is None


def test_xml_with_entities_is_refused() -> None:
    with pytest.raises(CryptoError):
        parse_xml('<!DOCTYPE x [<!ENTITY a "aaaa">]><xml><Encrypt>&a;</Encrypt></xml>')
    assert parse_xml("<xml><Encrypt><![CDATA[abc]]></Encrypt></xml>") == {"Encrypt": "abc"}


def test_seen_ids_expire() -> None:
    seen = SeenIds(ttl_s=10, max_items=3)
    assert seen.first_time("a", now=0) and not seen.first_time("a", now=5)
    assert seen.first_time("a", now=11)  # expired
    for k in "bcd":
        seen.first_time(k, now=12)
    assert seen.first_time("a", now=12)  # evicted by size
