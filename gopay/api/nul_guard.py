"""Requests holding the NUL character are refused before any route sees them.

PostgreSQL's text cannot store NUL: a name or note holding one would be accepted by the write
side (events are JSON) and then stop the read model that tries to show it, for every reader.
No field of the API has a use for it, so one check at the door covers them all: the JSON
body (`\\u0000`, or the raw byte) and the query string (`%00`).
"""

from __future__ import annotations

import re

from starlette.types import ASGIApp, Receive, Scope, Send

from gopay.api.fast_lane import read_body, replay
from gopay.api.problems import problem_response

# A JSON escape of NUL: `\u0000` after an even number of backslashes (`\\u0000` is text).
_ESCAPED_NUL = re.compile(rb"(?<!\\)(?:\\\\)*\\u0000")


def holds_nul(body: bytes) -> bool:
    return b"\x00" in body or (b"u0000" in body and _ESCAPED_NUL.search(body) is not None)


class NulGuard:
    """Answers 422 to a request whose query or JSON body holds NUL; passes on the rest."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        if b"%00" in scope.get("query_string", b""):
            await _refuse(scope, receive, send)
            return
        content_type = next((value for name, value in scope["headers"]
                             if name == b"content-type"), b"")
        if b"json" not in content_type.lower():  # uploads and forms: their routes read them
            await self.app(scope, receive, send)
            return
        body = await read_body(receive)
        if body is None:  # the client went away before sending its request
            return
        if holds_nul(body):
            await _refuse(scope, receive, send)
            return
        await self.app(scope, replay(body, receive), send)


async def _refuse(scope: Scope, receive: Receive, send: Send) -> None:
    await problem_response(422, "text may not hold the NUL character (U+0000)",
                           "validation_error")(scope, receive, send)
