"""Text normalisation shared by rules, models and augmentation.

ASR output has no reliable punctuation, so every layer sees the same canonical form: NFKC
(full-width → half-width), lower case, punctuation and spaces removed except a single space
between two Latin/digit words ("ok ok").
"""

from __future__ import annotations

import re
import unicodedata

_NON_WORD = re.compile(r"[\W_]+", re.UNICODE)
_SPACE_NOT_BETWEEN_ASCII = re.compile(r"(?<![a-z0-9]) | (?![a-z0-9])")


def normalize(text: str) -> str:
    """Canonical form used for matching and model input."""
    s = unicodedata.normalize("NFKC", text).lower()
    s = _NON_WORD.sub(" ", s).strip()
    return _SPACE_NOT_BETWEEN_ASCII.sub("", s)


def strip_punct(text: str) -> str:
    """Text as a telephone ASR engine would give it: no punctuation, original case kept."""
    s = unicodedata.normalize("NFKC", text)
    s = _NON_WORD.sub(" ", s).strip()
    return _SPACE_NOT_BETWEEN_ASCII.sub("", s)
