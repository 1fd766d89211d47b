"""Logging: one JSON object a line in production (text on a terminal), each carrying the call id.

The call id travels in a context variable set while a call's event is handled; tasks started then (the
lookup) inherit it, so every line about a call can be found with one filter. Messages never hold a secret
or a card: connectors and the flow log reasons and names only.
"""

from __future__ import annotations

import json
import logging
import sys
from contextvars import ContextVar
from datetime import UTC, datetime

call_id_var: ContextVar[str | None] = ContextVar("screenpop_call_id", default=None)


class _CallId(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        record.call_id = call_id_var.get()
        return True


class JsonFormatter(logging.Formatter):
    """{"ts", "level", "logger", "msg", "call_id"?, "exc"?} on one line."""

    def format(self, record: logging.LogRecord) -> str:
        out = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "msg": record.getMessage(),
        }
        call_id = getattr(record, "call_id", None)
        if call_id:
            out["call_id"] = call_id
        if record.exc_info:
            out["exc"] = self.formatException(record.exc_info)
        return json.dumps(out, ensure_ascii=False)


class TextFormatter(logging.Formatter):
    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s: %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        text = super().format(record)
        cid = getattr(record, "call_id", None)
        return f"{text} [call {cid}]" if cid else text


def setup_logging(level: str = "INFO", fmt: str = "auto") -> None:
    """Configure the root logger: `json`, `text`, or `auto` (JSON unless stderr is a terminal)."""
    use_json = fmt == "json" or (fmt == "auto" and not sys.stderr.isatty())
    handler = logging.StreamHandler()
    handler.setFormatter(JsonFormatter() if use_json else TextFormatter())
    handler.addFilter(_CallId())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    for noisy in ("httpx", "httpcore"):  # one line per request of the CLI and the demo's health checks
        logging.getLogger(noisy).setLevel(max(logging.WARNING, root.level))
