"""Logging for the server: one formatter that every line passes through (uvicorn's, ours, root's).

It masks Chinese mobile numbers (138****5678; with +86/86/0086 prefixes, spaces or dashes between
the groups, and fullwidth/superscript/other Unicode digits read as the digits they are) and any
other run of 11+ digits, in the message, its arguments and the formatted traceback (exception
texts and SQL parameters included). Control characters, line separators and lone surrogates in a
message are escaped (a `\\n` in a call id cannot start a forged line); traceback lines are
indented, so every line that starts at column 0 is a real record.
"""

from __future__ import annotations

import logging
import re
import unicodedata
from typing import Any

# Digits that are not ASCII but read as one: fullwidth and other decimal digits (\d), superscripts,
# subscripts and circled digits.
_ANY_DIGIT = re.compile(r"[\d\u00b2\u00b3\u00b9\u2070-\u2079\u2080-\u2089\u2460-\u2468\u24ea]")
_MOBILE = re.compile(r"(?<![0-9])((?:\+|00)?86[ \-]?)?(1[3-9][0-9])[ \-]?([0-9]{4})[ \-]?([0-9]{4})(?![0-9])")
_LONG_RUN = re.compile(r"[0-9]{11,}")
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029\ud800-\udfff]")
_CONTROL_KEEP_NEWLINE = re.compile(r"[\x00-\x09\x0b-\x1f\x7f-\x9f\u2028\u2029\ud800-\udfff]")
_NAMED = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}
TRACEBACK_INDENT = "  "


def _ascii_digits(text: str) -> str:
    """The same text with every digit-like character replaced by its ASCII digit (same length)."""
    return _ANY_DIGIT.sub(lambda m: m.group() if m.group().isascii() else str(unicodedata.digit(m.group(), 0)), text)


def mask_phones(text: str) -> str:
    """Mobile numbers → 138****5678 (prefix kept); other runs of 11+ digits → first 3 + last 4."""
    if len(_ANY_DIGIT.findall(text)) < 11:  # fast path: too few digits for a phone
        return text
    norm = _ascii_digits(text)
    spans: list[tuple[int, int, str]] = []
    for m in _MOBILE.finditer(norm):
        prefix = m.group(1) or ""
        spans.append((m.start(), m.end(), f"{prefix}{m.group(2)}****{m.group(4)}"))
    taken = [(a, b) for a, b, _ in spans]
    for m in _LONG_RUN.finditer(norm):
        if not any(a < m.end() and m.start() < b for a, b in taken):
            run = m.group()
            spans.append((m.start(), m.end(), f"{run[:3]}{'*' * (len(run) - 7)}{run[-4:]}"))
    if not spans:
        return text
    out: list[str] = []
    pos = 0
    for start, end, masked in sorted(spans):
        out += [text[pos:start], masked]
        pos = end
    out.append(text[pos:])
    return "".join(out)


def _escape(m: re.Match[str]) -> str:
    ch = m.group()
    named = _NAMED.get(ch)
    if named:
        return named
    code = ord(ch)
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def clean_line(text: str) -> str:
    """One log line's text: phones masked, control characters and surrogates escaped."""
    return _CONTROL.sub(_escape, mask_phones(text))


def clean_block(text: str) -> str:
    """A traceback or stack: masked, escaped except newlines, every line indented."""
    body = _CONTROL_KEEP_NEWLINE.sub(_escape, mask_phones(text))
    return "\n".join(TRACEBACK_INDENT + line for line in body.split("\n"))


def _message(record: logging.LogRecord) -> str:
    try:
        return record.getMessage()
    except Exception:  # a broken format string: logging would print the raw args; we print them masked
        return f"{record.msg} (bad log arguments: {record.args!r})"


class MaskingFormatter(logging.Formatter):
    """A logging.Formatter whose every output line is masked and escaped (module docstring)."""

    def format(self, record: logging.LogRecord) -> str:
        record.message = clean_line(_message(record))
        if self.usesTime():
            record.asctime = self.formatTime(record, self.datefmt)
        text = self.formatMessage(record)
        blocks = []
        if record.exc_info:
            blocks.append(self.formatException(record.exc_info))
        elif record.exc_text:
            blocks.append(record.exc_text)
        if record.stack_info:
            blocks.append(self.formatStack(record.stack_info))
        for block in blocks:
            text += "\n" + clean_block(block.rstrip("\n"))
        return text


class MaskPhones(logging.Filter):
    """For handlers that keep their own formatter (pytest's caplog): masks the message, its
    arguments and a traceback text already formatted, and drops the arguments."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.msg = clean_line(_message(record))
        record.args = None
        if record.exc_text:
            record.exc_text = clean_block(record.exc_text)
        return True


FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
OUR_LOGGERS = ("uvicorn", "uvicorn.error", "uvicorn.access", "huashu", "server", "dialogue", "asr", "nlu",
               "store", "wecom", "campaign")


def log_config(level: str = "info") -> dict[str, Any]:
    """dictConfig for uvicorn and our loggers: one stderr handler with the masking formatter."""
    lvl = level.upper()
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"masked": {"()": "server.logs.MaskingFormatter", "fmt": FORMAT}},
        "handlers": {"stderr": {"class": "logging.StreamHandler", "formatter": "masked",
                                "stream": "ext://sys.stderr"}},
        "loggers": {name: {"handlers": ["stderr"], "level": lvl, "propagate": False} for name in OUR_LOGGERS},
        "root": {"handlers": ["stderr"], "level": "WARNING"},
    }


def install(level: str = "info") -> None:
    """Apply `log_config` to this process (tests and embedding; `huashu serve` passes it to uvicorn)."""
    import logging.config

    logging.config.dictConfig(log_config(level))
