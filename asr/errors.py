"""ASR errors. Messages name the file, setting or path at fault and are safe to show a caller."""

from __future__ import annotations


class AsrError(Exception):
    """Base of every error raised by the asr package."""


class ModelError(AsrError):
    """A recognizer model is missing, corrupt or mis-configured (names the setting and path)."""


class AudioError(AsrError, ValueError):
    """The input is not decodable audio; the message says why."""
