"""The servers' logging: uvicorn's log config, with every key, secret and email masked, each
line of a request tagged with its request id, as text or as one JSON object a line.

Clients put keys where they like: publishable keys travel in query strings by design (``?key=``,
so ``sendBeacon`` works), and any key can end up in a URL, a header quoted in an error or an
exception's message. A filter on every handler rewrites each record before it is written, so no
log line, at any level, holds more of a secret than its prefix and last four characters, nor an
email address more than its domain.
"""

from __future__ import annotations

import copy
import datetime as dt
import itertools
import logging
import os
import re
from collections.abc import Mapping
from contextvars import ContextVar
from typing import Any, Literal

import msgspec


def _literal(text: str) -> str:
    """A pattern for ``text`` with any of its characters maybe percent-encoded (``%77pp_``,
    ``wpp%5F``): what a server that decodes URLs once takes as ``text``."""
    return "".join(
        f"(?:{re.escape(ch)}|%{ord(ch):02X}|%{ord(ch):02x})" if ch.isalnum() or ch == "_" else ch
        for ch in text
    )


# Waypost's key prefixes, followed by at least 8 characters of the key (URL-safe base64, so a
# "/" ends it: /v1/projects/<key>/settings keeps its /settings), and the webhook secrets' one,
# followed by standard base64; any of their characters maybe percent-encoded in a URL, as the
# server decodes them. Shorter tails are the readable prefixes the admin UI lists keys by
# (wpt_ and 4 characters), which are no secret.
SECRET = re.compile(
    f"({'|'.join(_literal(prefix) for prefix in ('wpt_', 'wpp_', 'wpa_'))})"
    r"((?:[A-Za-z0-9_\-=]|%[0-9A-Fa-f]{2}){8,})"
    f"|({_literal('whsec_')})"
    r"((?:[A-Za-z0-9_\-+/=]|%[0-9A-Fa-f]{2}){8,})"
)

# The "@" of an email address (maybe percent-encoded, in a query string or a path) and its
# domain: a run of what a domain is made of, dotted or not ("admin@localhost" is an address),
# in UTF-8 or its percent-encoded bytes (%80 to %FF: never a separator such as %2C or %40), or
# an address literal in brackets ("[127.0.0.1]", maybe as %5B...%5D). Each alternative starts
# with its own characters and the search starts only at an "@" or a "%", so it never
# backtracks; the local part is found by walking back from the "@" to the end of the last
# address masked, so that each character is looked at once (see _mask_emails).
AT_DOMAIN = re.compile(
    r"(?:@|%40)("
    r"(?:[A-Za-z0-9\-_.]|%[89A-Fa-f][0-9A-Fa-f]|[^\x00-\x7f]){1,255}"
    r"|\[[0-9A-Fa-f.:]{1,45}\]"
    r"|%5[Bb][0-9A-Fa-f.:]{1,45}%5[Dd]"
    r")"
)
# What a local part is made of: letters, digits and the other characters of RFC 5322's atext
# (o'brien@, bang!@), less "&", "=", "?" and "/", which part a query string or a path before
# an address (the walk back would take the parameter's name or the path with it).
LOCAL_PART = frozenset(
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._%+-!#$'*^`{|}~"
)

_TRACEBACKS = logging.Formatter()

LogFormat = Literal["text", "json"]

# The request id of the request being served, for every line logged while it is.
REQUEST_ID: ContextVar[str | None] = ContextVar("waypost_request_id", default=None)

# A request id a client sends is kept when it is this short and of these characters only, so
# that it can be neither a vehicle for log injection nor a way to make lines huge.
_MAX_REQUEST_ID = 64
_SAFE_REQUEST_ID = re.compile(rb"[A-Za-z0-9._:\-]+")
# New ids: a random prefix per process, then a counter (unique across nodes, restarts and
# forked workers, and cheaper than random bytes for every request).
_ID_PREFIX = os.urandom(5).hex()
_ID_COUNTER = itertools.count(1)


def _new_id_prefix() -> None:
    global _ID_PREFIX, _ID_COUNTER
    _ID_PREFIX = os.urandom(5).hex()
    _ID_COUNTER = itertools.count(1)


os.register_at_fork(after_in_child=_new_id_prefix)


def request_id_of(value: bytes | None) -> str:
    """The request id for a request whose ``X-Request-Id`` header is ``value``: that value
    when it is sane (1 to 64 of ``A-Z a-z 0-9 . _ : -``), else a new one."""
    if value is not None and len(value) <= _MAX_REQUEST_ID and _SAFE_REQUEST_ID.fullmatch(value):
        return value.decode()
    return f"{_ID_PREFIX}-{next(_ID_COUNTER):x}"


def mask_secrets(text: str) -> str:
    """``text`` with each key or secret shortened to its prefix and last four characters, and
    each email address to its domain (``…@example.com``)."""
    text = SECRET.sub(_mask, text)
    if "@" in text or "%40" in text:
        text = _mask_emails(text)
    return text


def _mask_emails(text: str) -> str:
    parts: list[str] = []
    done = 0
    for match in AT_DOMAIN.finditer(text):
        at = match.start()
        start = at
        while start > done and (text[start - 1] in LOCAL_PART or text[start - 1] > "\x7f"):
            start -= 1
        if start == at:
            continue  # no local part: "@home", a handle, not an address
        parts += (text[done:start], "…@", match[1])
        done = match.end()
    if not parts:
        return text
    parts.append(text[done:])
    return "".join(parts)


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


class RequestContext(logging.Filter):
    """Gives each record the id of the request being served (``request_id``, None outside
    a request) and ``request_tag``, the same as text (``[id] ``, or nothing)."""

    def filter(self, record: logging.LogRecord) -> bool:
        request_id = REQUEST_ID.get()
        record.request_id = request_id
        record.request_tag = f"[{request_id}] " if request_id else ""
        return True


# Probes and scrapes come every few seconds and say nothing about the traffic.
QUIET_PATHS = frozenset({"/healthz", "/readyz", "/metrics"})


class QuietProbes(logging.Filter):
    """Keeps health checks and metric scrapes out of the access log."""

    def filter(self, record: logging.LogRecord) -> bool:
        args = record.args
        if isinstance(args, tuple) and len(args) == 5 and isinstance(args[2], str):
            return args[2].partition("?")[0] not in QUIET_PATHS
        return True


class JsonFormatter(logging.Formatter):
    """One JSON object a line: ``time`` (UTC, ISO 8601), ``level``, ``logger``, ``message``,
    ``request_id`` within a request, ``exception`` with a traceback, and for uvicorn's access
    log ``client``, ``method``, ``path``, ``http_version`` and ``status``."""

    def format(self, record: logging.LogRecord) -> str:
        at = dt.datetime.fromtimestamp(record.created, dt.UTC)
        line: dict[str, object] = {
            "time": at.isoformat(timespec="milliseconds").replace("+00:00", "Z"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        request_id = getattr(record, "request_id", None)
        if request_id:
            line["request_id"] = request_id
        args = record.args
        if record.name == "uvicorn.access" and isinstance(args, tuple) and len(args) == 5:
            client, method, path, version, status = args
            line.update(
                client=client, method=method, path=path, http_version=version, status=status
            )
        if record.exc_info and not record.exc_text:
            record.exc_text = mask_secrets(self.formatException(record.exc_info))
        if record.exc_text:
            line["exception"] = record.exc_text
        if record.stack_info:
            line["stack"] = record.stack_info
        return msgspec.json.encode(line).decode()


def log_config(level: str, log_format: LogFormat = "text") -> dict[str, Any]:
    """uvicorn's logging config for ``uvicorn.Config(log_config=...)``, with secrets masked and
    the request id added on every handler, and Waypost's loggers (at ``level``) and all others
    (warnings and worse) written through the same handler as uvicorn's own messages. Health
    checks and scrapes stay out of the access log unless ``level`` is ``debug``."""
    from uvicorn.config import LOGGING_CONFIG

    config = copy.deepcopy(LOGGING_CONFIG)
    config["filters"] = {
        "mask_secrets": {"()": MaskSecrets},
        "request_context": {"()": RequestContext},
        "quiet_probes": {"()": QuietProbes},
    }
    for handler in config["handlers"].values():
        handler["filters"] = ["mask_secrets", "request_context"]
    if level.lower() != "debug":
        config["handlers"]["access"]["filters"].append("quiet_probes")
    formatters = config["formatters"]
    if log_format == "json":
        for name in formatters:
            formatters[name] = {"()": JsonFormatter}
    else:
        formatters["default"]["fmt"] = "%(levelprefix)s %(request_tag)s%(message)s"
        formatters["access"]["fmt"] = (
            '%(levelprefix)s %(request_tag)s%(client_addr)s - "%(request_line)s" %(status_code)s'
        )
    config["loggers"]["waypost"] = {
        "handlers": ["default"],
        "level": level.upper(),
        "propagate": False,
    }
    config["root"] = {"handlers": ["default"], "level": "WARNING"}
    return config
