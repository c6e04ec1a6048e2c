"""Say "busy, try again in a moment" when the UI's queue is full, in the app's own words."""
from __future__ import annotations

import json

from engine.jobs.gate import BUSY


class BusyMessage:
    """ASGI middleware: a full Gradio queue answers 503 with BUSY instead of the queue's internals."""

    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http" or not scope["path"].endswith("/queue/join"):
            return await self.app(scope, receive, send)
        held: dict = {}

        async def rewrite(message):
            if message["type"] == "http.response.start" and message["status"] == 503:
                body = json.dumps({"detail": BUSY, "error": BUSY}).encode()
                headers = [(k, v) for k, v in message.get("headers", []) if k.lower() != b"content-length"]
                held["body"] = body
                await send({**message, "headers": [*headers, (b"content-length", str(len(body)).encode())]})
            elif message["type"] == "http.response.body" and "body" in held:
                if not message.get("more_body"):
                    await send({"type": "http.response.body", "body": held.pop("body")})
            else:
                await send(message)
        await self.app(scope, receive, rewrite)
