"""WeCom (企业微信) callback message crypto, on the `cryptography` library.

msg_signature = sha1 of the sorted concatenation of token, timestamp, nonce and the ciphertext;
ciphertext = base64(AES-256-CBC(key, iv=key[:16], PKCS#7 to 32-byte blocks,
                   16 random bytes + 4-byte big-endian length + message + receive_id)),
key = base64decode(EncodingAESKey + "=").
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import os
import struct

from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

BLOCK = 32  # WeCom pads to 32 bytes, not AES's 16


class CryptoError(Exception):
    """A callback failed verification or decryption. `code` follows WeCom's WXBizMsgCrypt codes."""

    def __init__(self, code: int, message: str) -> None:
        self.code = code
        super().__init__(message)


# WXBizMsgCrypt return codes (so logs read like WeCom's own documentation).
SIGNATURE_ERROR = -40001
PARSE_XML_ERROR = -40002
ILLEGAL_AES_KEY = -40004
RECEIVE_ID_ERROR = -40005
DECRYPT_ERROR = -40007
ILLEGAL_BUFFER = -40008
DECODE_BASE64_ERROR = -40010


def signature(token: str, timestamp: str, nonce: str, encrypted: str) -> str:
    """WeCom's msg_signature (hex sha1)."""
    return hashlib.sha1("".join(sorted((token, timestamp, nonce, encrypted))).encode("utf-8")).hexdigest()


def aes_key(encoding_aes_key: str) -> bytes:
    """The 32-byte AES key of a 43-character EncodingAESKey."""
    if len(encoding_aes_key) != 43:
        raise CryptoError(ILLEGAL_AES_KEY, "HUASHU_WECOM_AES_KEY must be the 43-character EncodingAESKey")
    try:
        key = base64.b64decode(encoding_aes_key + "=", validate=True)
    except binascii.Error:
        raise CryptoError(ILLEGAL_AES_KEY, "HUASHU_WECOM_AES_KEY is not base64") from None
    if len(key) != 32:
        raise CryptoError(ILLEGAL_AES_KEY, "HUASHU_WECOM_AES_KEY does not decode to 32 bytes")
    return key


class WeComCrypto:
    """Verify, decrypt and encrypt callback payloads for one app (token, EncodingAESKey, receive id)."""

    def __init__(self, token: str, encoding_aes_key: str, receive_id: str) -> None:
        if not token:
            raise CryptoError(SIGNATURE_ERROR, "HUASHU_WECOM_TOKEN is empty")
        self.token = token
        self.key = aes_key(encoding_aes_key)
        self.receive_id = receive_id

    def signature(self, timestamp: str, nonce: str, encrypted: str) -> str:
        return signature(self.token, timestamp, nonce, encrypted)

    def verify(self, msg_signature: str, timestamp: str, nonce: str, encrypted: str) -> None:
        """Raises CryptoError unless msg_signature matches (constant-time compare)."""
        expected = self.signature(timestamp, nonce, encrypted)
        if not hmac.compare_digest(expected, (msg_signature or "").lower()):
            raise CryptoError(SIGNATURE_ERROR, "msg_signature does not match")

    def _cipher(self) -> Cipher[modes.CBC]:
        return Cipher(algorithms.AES(self.key), modes.CBC(self.key[:16]))

    def decrypt(self, encrypted: str) -> str:
        """The message inside `encrypted`; checks padding, length and the receive id."""
        try:
            raw = base64.b64decode(encrypted, validate=True)
        except (binascii.Error, ValueError):
            raise CryptoError(DECODE_BASE64_ERROR, "ciphertext is not base64") from None
        if not raw or len(raw) % 16:
            raise CryptoError(DECRYPT_ERROR, "ciphertext length is not a multiple of the AES block")
        decryptor = self._cipher().decryptor()
        plain = decryptor.update(raw) + decryptor.finalize()
        pad = plain[-1]
        if not 1 <= pad <= BLOCK or plain[-pad:] != bytes([pad]) * pad:
            raise CryptoError(DECRYPT_ERROR, "bad padding (wrong EncodingAESKey?)")
        body = plain[16:-pad]  # drop the 16 random bytes and the padding
        if len(body) < 4:
            raise CryptoError(ILLEGAL_BUFFER, "decrypted message too short")
        (length,) = struct.unpack("!I", body[:4])
        if length > len(body) - 4:
            raise CryptoError(ILLEGAL_BUFFER, "message length field exceeds the payload")
        message, receive_id = body[4:4 + length], body[4 + length:]
        if self.receive_id and not hmac.compare_digest(receive_id, self.receive_id.encode("utf-8")):
            raise CryptoError(RECEIVE_ID_ERROR, "receive id does not match HUASHU_WECOM_CORP_ID")
        try:
            return message.decode("utf-8")
        except UnicodeDecodeError:
            raise CryptoError(ILLEGAL_BUFFER, "message is not UTF-8") from None

    def encrypt(self, message: str, random16: bytes | None = None) -> str:
        """Ciphertext of `message` (used for passive replies and by tests)."""
        nonce = os.urandom(16) if random16 is None else random16
        if len(nonce) != 16:
            raise ValueError("random16 must be 16 bytes")
        data = message.encode("utf-8")
        body = nonce + struct.pack("!I", len(data)) + data + self.receive_id.encode("utf-8")
        pad = BLOCK - len(body) % BLOCK
        body += bytes([pad]) * pad
        encryptor = self._cipher().encryptor()
        return base64.b64encode(encryptor.update(body) + encryptor.finalize()).decode("ascii")

    def verify_and_decrypt(self, msg_signature: str, timestamp: str, nonce: str, encrypted: str) -> str:
        self.verify(msg_signature, timestamp, nonce, encrypted)
        return self.decrypt(encrypted)
