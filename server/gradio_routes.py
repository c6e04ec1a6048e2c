"""Gradio's own routes, answered without server paths, and without the dev routes outside reload mode."""
from __future__ import annotations

import json
import os
import re

FILE_ROUTE = re.compile(r"/file[=/]")
DEV_ROUTE = re.compile(r"/dev/reload/?$")
FILE_NOT_ALLOWED = "File not allowed."


def _json(status: int, detail: str) -> tuple[dict, bytes]:
    body = json.dumps({"detail": detail}).encode()
    start = {"type": "http.response.start", "status": status,
             "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]}
    return start, body


def reload_mode() -> bool:
    """True under `gradio app.py`, whose reloader sets GRADIO_WATCH_DIRS; the page then listens on /dev/reload."""
    return bool(os.environ.get("GRADIO_WATCH_DIRS"))


class GradioRoutes:
    """ASGI middleware: the file route refuses in a sentence of its own, not "File not allowed: <the path asked
    for>", and /dev/reload, an event stream that never closes, answers 404 unless Gradio's reload mode is on."""

    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        path = scope.get("path", "") if scope["type"] == "http" else ""
        if DEV_ROUTE.search(path) and not reload_mode():
            start, body = _json(404, "Not Found")
            await send(start)
            return await send({"type": "http.response.body", "body": body})
        if not FILE_ROUTE.search(path):
            return await self.app(scope, receive, send)
        refused: dict = {}

        async def plain(message):
            if message["type"] == "http.response.start" and message["status"] == 403:
                start, refused["body"] = _json(403, FILE_NOT_ALLOWED)
                await send({**message, "headers": [*_kept(message), *start["headers"]]})
            elif message["type"] == "http.response.body" and "body" in refused:
                if not message.get("more_body"):
                    await send({"type": "http.response.body", "body": refused.pop("body")})
            else:
                await send(message)
        await self.app(scope, receive, plain)


def _kept(message) -> list:
    return [(k, v) for k, v in message.get("headers", []) if k.lower() not in (b"content-length", b"content-type")]
