"""The servers' logging: uvicorn's log config, with every key and secret masked.

Clients put keys where they like: publishable keys travel in query strings by design (``?key=``,
so ``sendBeacon`` works), and any key can end up in a URL, a header quoted in an error or an
exception's message. A filter on every handler rewrites each record before it is written, so no
log line, at any level, holds more of a secret than its prefix and last four characters.
"""

from __future__ import annotations

import copy
import logging
import re
from collections.abc import Mapping
from typing import Any

# Waypost's key prefixes, followed by at least 8 characters of the key (URL-safe base64, so a
# "/" ends it: /v1/projects/<key>/settings keeps its /settings), and the webhook secrets' one,
# followed by standard base64; either maybe percent-encoded in a URL. Shorter tails are the
# readable prefixes the admin UI lists keys by (wpt_ and 4 characters), which are no secret.
SECRET = re.compile(
    r"(wpt_|wpp_|wpa_)((?:[A-Za-z0-9_\-=]|%[0-9A-Fa-f]{2}){8,})"
    r"|(whsec_)((?:[A-Za-z0-9_\-+/=]|%[0-9A-Fa-f]{2}){8,})"
)

_TRACEBACKS = logging.Formatter()


def mask_secrets(text: str) -> str:
    """``text`` with each key or secret shortened to its prefix and last four characters."""
    return SECRET.sub(_mask, text)


def _mask(match: re.Match[str]) -> str:
    prefix, secret = (match[1], match[2]) if match[1] else (match[3], match[4])
    return f"{prefix}…{secret[-4:]}"


class MaskSecrets(logging.Filter):
    """Masks secrets in a record's message, its arguments and its traceback; drops nothing."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.msg, str):
            record.msg = mask_secrets(record.msg)
        # The arguments are masked one by one rather than merged into the message, as
        # uvicorn's access formatter reads them by position.
        if isinstance(record.args, tuple):
            record.args = tuple(_masked_arg(arg) for arg in record.args)
        elif isinstance(record.args, Mapping):
            record.args = {name: _masked_arg(arg) for name, arg in record.args.items()}
        if record.exc_info and not record.exc_text:
            record.exc_text = _TRACEBACKS.formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = mask_secrets(record.exc_text)
        if record.stack_info:
            record.stack_info = mask_secrets(record.stack_info)
        return True


def _masked_arg(arg: object) -> object:
    if isinstance(arg, str):
        return mask_secrets(arg)
    if arg is None or isinstance(arg, int | float):
        return arg  # what %d and %f need, and no secret
    try:
        text = str(arg)
    except Exception:
        return arg  # the formatter will say what is wrong with it
    masked = mask_secrets(text)
    return arg if masked == text else masked


def log_config(level: str) -> dict[str, Any]:
    """uvicorn's logging config for ``uvicorn.Config(log_config=...)``, with secrets masked on
    every handler, and Waypost's loggers (at ``level``) and all others (warnings and worse)
    written through the same handler as uvicorn's own messages."""
    from uvicorn.config import LOGGING_CONFIG

    config = copy.deepcopy(LOGGING_CONFIG)
    config["filters"] = {"mask_secrets": {"()": MaskSecrets}}
    for handler in config["handlers"].values():
        handler["filters"] = ["mask_secrets"]
    config["loggers"]["waypost"] = {
        "handlers": ["default"],
        "level": level.upper(),
        "propagate": False,
    }
    config["root"] = {"handlers": ["default"], "level": "WARNING"}
    return config
