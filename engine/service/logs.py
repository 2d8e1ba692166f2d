"""Structured JSON logs, and the middleware that limits request size and logs each request.

A log line never holds a patient identifier or clinical data: only the
route's *template* (``/explanations/{id}``, not the id), the method, the
status, the time taken, the request's size, and the token's name. Query
strings, bodies and error details about a record are not logged.
"""

from __future__ import annotations

import logging
import sys
import time

import orjson

LOGGER = "pathways.service"


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, event and the record's ``fields``."""

    def format(self, record: logging.LogRecord) -> str:
        data = {"time": self.formatTime(record, "%Y-%m-%dT%H:%M:%S") + f".{int(record.msecs):03d}Z",
                "level": record.levelname.lower(), "event": record.getMessage()}
        data.update(getattr(record, "fields", {}))
        return orjson.dumps(data, option=orjson.OPT_SORT_KEYS).decode()


def setup_logging(stream=None, level: int = logging.INFO) -> logging.Logger:
    """Send the service's logs, as JSON lines, to ``stream`` (stderr)."""
    JsonFormatter.converter = time.gmtime
    logger = logging.getLogger(LOGGER)
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(JsonFormatter())
    logger.handlers[:] = [handler]
    logger.setLevel(level)
    logger.propagate = False
    return logger


def log(event: str, level: int = logging.INFO, **fields) -> None:
    """Log ``event`` with structured ``fields`` (which must hold no patient data)."""
    logging.getLogger(LOGGER).log(level, event, extra={"fields": fields})


class TooLarge(Exception):
    pass


class LimitAndLog:
    """ASGI middleware: refuse bodies over ``max_bytes`` with 413; log every request."""

    def __init__(self, app, max_bytes: int):
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        state = {"status": 0, "bytes": 0}
        declared = _content_length(scope)
        if declared is not None and declared > self.max_bytes:
            await _too_large(send, self.max_bytes)
            self._log(scope, 413, start, declared)
            return

        async def counted_receive():
            message = await receive()
            if message["type"] == "http.request":
                state["bytes"] += len(message.get("body", b""))
                if state["bytes"] > self.max_bytes:
                    raise TooLarge
            return message

        async def watched_send(message):
            if message["type"] == "http.response.start":
                state["status"] = message["status"]
            await send(message)

        try:
            await self.app(scope, counted_receive, watched_send)
        except TooLarge:
            if state["status"] == 0:
                await _too_large(send, self.max_bytes)
            state["status"] = 413
        self._log(scope, state["status"], start, state["bytes"])

    def _log(self, scope, status: int, start: float, size: int) -> None:
        route = scope.get("route")
        where = getattr(route, "path", None) or "(no route)"
        state = scope.get("state") or {}
        log("request", method=scope.get("method"), route=where, status=status, size=size,
            ms=round((time.perf_counter() - start) * 1000, 2), who=state.get("who"))


def _content_length(scope) -> int | None:
    for key, value in scope.get("headers") or ():
        if key == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None
    return None


async def _too_large(send, limit: int) -> None:
    body = orjson.dumps({"error": f"the request is larger than the limit of {limit:,} bytes"})
    await send({"type": "http.response.start", "status": 413,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})
