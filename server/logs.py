"""Logging for the server: every line passes through a filter that masks phone numbers
(any run of 7+ digits → 138****1234), including uvicorn's access log (paths carry call ids)."""

from __future__ import annotations

import logging
from typing import Any

from store.phones import mask_id


class MaskPhones(logging.Filter):
    """Formats the message, masks digit runs, and drops the args (nothing unmasked survives)."""

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # a broken format string: still log something, masked
            message = str(record.msg)
        record.msg = mask_id(message)
        record.args = None
        if record.exc_text:
            record.exc_text = mask_id(record.exc_text)
        return True


def log_config(level: str = "info") -> dict[str, Any]:
    """dictConfig for uvicorn and our loggers, with the masking filter on every handler."""
    lvl = level.upper()
    fmt = "%(asctime)s %(levelname)s %(name)s: %(message)s"
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "filters": {"mask": {"()": "server.logs.MaskPhones"}},
        "formatters": {"plain": {"format": fmt}},
        "handlers": {"stderr": {"class": "logging.StreamHandler", "formatter": "plain",
                                "filters": ["mask"], "stream": "ext://sys.stderr"}},
        "loggers": {
            "uvicorn": {"handlers": ["stderr"], "level": lvl, "propagate": False},
            "uvicorn.error": {"handlers": ["stderr"], "level": lvl, "propagate": False},
            "uvicorn.access": {"handlers": ["stderr"], "level": lvl, "propagate": False},
            "huashu": {"handlers": ["stderr"], "level": lvl, "propagate": False},
                        "dialogue": {"handlers": ["stderr"], "level": lvl, "propagate": False},
            "asr": {"handlers": ["stderr"], "level": lvl, "propagate": False},
            "nlu": {"handlers": ["stderr"], "level": lvl, "propagate": False},
            "wecom": {"handlers": ["stderr"], "level": lvl, "propagate": False},
        },
        "root": {"handlers": ["stderr"], "level": "WARNING"},
    }


def install(level: str = "info") -> None:
    """Apply `log_config` to this process (tests and embedding; `huashu serve` passes it to uvicorn)."""
    import logging.config

    logging.config.dictConfig(log_config(level))
