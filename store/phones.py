"""Phone numbers: normalised, masked (138****1234), keyed hash for dedupe, encrypted for providers.

The unmasked number exists only in memory on import and, encrypted, in the `phone_enc` column; it is
decrypted only for a provider export that asks for it explicitly. `cryptography` is imported only here.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import re
import secrets
from dataclasses import dataclass
from pathlib import Path

from cryptography.fernet import Fernet, InvalidToken

KEY_FILE_NAME = "phone.key"
_MOBILE = re.compile(r"^1[3-9]\d{9}$")
_LANDLINE = re.compile(r"^0\d{9,11}$")
_DIGITS_RUN = re.compile(r"\d{7,}")


class PhoneError(ValueError):
    """A phone number that is not a mainland mobile or landline number."""


def normalize_phone(raw: str) -> str:
    """Digits only, without +86 / 0086 prefix. Raises PhoneError when it is not a plausible number."""
    digits = re.sub(r"[\s\-()]", "", raw.strip())
    if digits.startswith("+86"):
        digits = digits[3:]
    elif digits.startswith("0086"):
        digits = digits[4:]
    elif digits.startswith("86") and len(digits) == 13:
        digits = digits[2:]
    if not digits.isdigit() or not (_MOBILE.match(digits) or _LANDLINE.match(digits)):
        raise PhoneError(f"not a valid phone number: {mask_phone(raw)!r}")
    return digits


def mask_phone(phone: str) -> str:
    """138****1234: first 3 and last 4 digits kept; short strings are fully starred."""
    digits = re.sub(r"\D", "", phone)
    if len(digits) < 8:
        return "*" * len(digits)
    return f"{digits[:3]}{'*' * (len(digits) - 7)}{digits[-4:]}"


def mask_id(text: str) -> str:
    """An id safe for logs: any run of 7+ digits inside it (an embedded phone) is masked."""
    return _DIGITS_RUN.sub(lambda m: mask_phone(m.group(0)), text)


@dataclass(frozen=True, slots=True)
class PhoneKeys:
    """Keys derived from one secret: HMAC for the dedupe hash, Fernet for the provider copy."""

    hmac_key: bytes
    fernet_key: bytes

    @classmethod
    def from_secret(cls, secret: str) -> PhoneKeys:
        raw = secret.encode()
        hmac_key = hashlib.sha256(b"huashu-phone-hash\0" + raw).digest()
        fernet_key = base64.urlsafe_b64encode(hashlib.sha256(b"huashu-phone-enc\0" + raw).digest())
        return cls(hmac_key, fernet_key)

    @property
    def fingerprint(self) -> str:
        """Identifies the key without revealing it (kept in the database to catch a wrong key)."""
        return hashlib.sha256(b"fingerprint\0" + self.hmac_key).hexdigest()[:16]

    def hash(self, normalized: str) -> str:
        return hmac.new(self.hmac_key, normalized.encode(), hashlib.sha256).hexdigest()

    def encrypt(self, normalized: str) -> str:
        return Fernet(self.fernet_key).encrypt(normalized.encode()).decode()

    def decrypt(self, token: str) -> str:
        try:
            return Fernet(self.fernet_key).decrypt(token.encode()).decode()
        except InvalidToken:
            raise ValueError("phone cannot be decrypted with this key (HUASHU_PHONE_KEY)") from None


def load_keys(phone_key: str, data_dir: Path) -> PhoneKeys:
    """Keys from HUASHU_PHONE_KEY, else from <data_dir>/phone.key (created once, mode 0600)."""
    if phone_key:
        return PhoneKeys.from_secret(phone_key)
    path = data_dir / KEY_FILE_NAME
    if not path.exists():
        data_dir.mkdir(parents=True, exist_ok=True)
        secret = secrets.token_urlsafe(32)
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:  # another process created it first: use theirs
            pass
        else:
            with os.fdopen(fd, "w") as fh:
                fh.write(secret + "\n")
    secret = path.read_text().strip()
    if not secret:
        raise ValueError(f"phone key file {path} is empty; delete it or set HUASHU_PHONE_KEY")
    return PhoneKeys.from_secret(secret)


@dataclass(frozen=True, slots=True)
class StoredPhone:
    """What the database keeps of a phone."""

    hash: str
    masked: str
    encrypted: str


def protect(raw: str, keys: PhoneKeys) -> StoredPhone:
    digits = normalize_phone(raw)
    return StoredPhone(keys.hash(digits), mask_phone(digits), keys.encrypt(digits))
