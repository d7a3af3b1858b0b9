"""Structured JSON logging of metadata.

Nothing here formats request content: log calls pass only metadata as ``extra`` fields
(request id, route, status, latency, token counts). Exception tracebacks are not
rendered, because exception text from third-party code can quote its input; only the
exception type is logged.
"""

from __future__ import annotations

import logging
import sys
import time
from typing import IO, Any

import orjson

__all__ = ["JsonFormatter", "configure_logging", "get_logger"]

_RESERVED = frozenset(
    logging.LogRecord("", 0, "", 0, "", None, None).__dict__.keys() | {"message", "asctime"}
)


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, Any] = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "event": record.msg if isinstance(record.msg, str) else type(record.msg).__name__,
        }
        for key, value in record.__dict__.items():
            if key not in _RESERVED and key != "color_message" and not key.startswith("_"):
                out[key] = value
        if record.exc_info and record.exc_info[0] is not None:
            out["exc_type"] = record.exc_info[0].__name__
        return orjson.dumps(out, default=str).decode("utf-8")


def configure_logging(level: str = "info", stream: IO[str] | None = None) -> None:
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    wanted = logging.getLevelNamesMapping()[level.upper()]
    # Only airlock's own records go below INFO: they hold metadata by construction.
    # Third-party debug traces format their arguments into the message text (httpcore
    # prints the response headers and reason phrase an upstream chose, which can echo
    # the prompt), so they are never emitted, whatever the level.
    root.setLevel(max(wanted, logging.INFO))
    logging.getLogger("airlock").setLevel(wanted)
    # uvicorn's access log prints request lines our own access log already covers, and
    # its error log renders tracebacks; route both through our formatter, metadata only.
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        lg = logging.getLogger(name)
        lg.handlers[:] = []
        lg.propagate = True
    logging.getLogger("uvicorn.access").disabled = True
    # httpx writes one INFO line per upstream call; our own records cover the call.
    logging.getLogger("httpx").setLevel(logging.WARNING)


def get_logger(name: str) -> logging.Logger:
    return logging.getLogger(name)
