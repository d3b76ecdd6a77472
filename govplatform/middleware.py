"""Before any handler runs: the body-size limit, then the request signature and the replay check.

Done as one ASGI middleware because the signature covers the raw body bytes: the body
is read once (refused with 413 past the limit), verified with `govapi.signing.check_headers`,
and handed on unchanged. Order of refusals: 413, then 401, then the handlers' own 400/422.
The replay check is the platform's: a nonce is stored with its signed timestamp after
the signature verifies; seeing it again (within the skew window, after which stale
requests are refused anyway) is a replay.
"""
from __future__ import annotations

import datetime as dt
import json
import logging
from typing import Any

import anyio
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from govapi.signing import MAX_SKEW_S, SignatureError, SignedBy, check_headers
from govplatform import models as m
from govplatform.runtime import Platform

log = logging.getLogger("govplatform.signing")

SIGNED_BY = "govplatform.signed_by"
UNSIGNED = {("GET", "/v1/health"), ("POST", "/v1/terminals/enrol")}


def needs_signature(method: str, path: str) -> bool:
    """Every /v1 call except health and enrolment (govapi/README.md)."""
    return path.startswith("/v1/") and (method.upper(), path.rstrip("/") or "/") not in UNSIGNED


async def _send_json(send: Send, status: int, body: dict[str, Any],
                     headers: tuple[tuple[bytes, bytes], ...] = ()) -> None:
    payload = json.dumps(body, ensure_ascii=False).encode("utf-8")
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(payload)).encode()),
                            *headers]})
    await send({"type": "http.response.body", "body": payload})


class SignedRequestMiddleware:
    def __init__(self, app: ASGIApp, platform: Platform) -> None:
        self.app = app
        self.platform = platform

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = self.platform.settings.max_body_bytes
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers", [])}
        length = headers.get("content-length")
        if length is not None:
            if not length.isdigit():
                await _send_json(send, 400, {"error": "bad_request", "message": "Content-Length is not a number"})
                return
            if int(length) > limit:
                await self._too_large(send, int(length), limit)
                return
        chunks: list[bytes] = []
        size = 0
        more = True
        while more:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > limit:
                await self._too_large(send, size, limit, at_least=True)
                return
            chunks.append(chunk)
            more = message.get("more_body", False)
        body = b"".join(chunks)

        method = scope["method"]
        path = scope["path"]
        if needs_signature(method, path):
            raw_path = scope.get("raw_path") or path.encode("utf-8")
            target = raw_path.decode("latin-1")
            if scope.get("query_string"):
                target += "?" + scope["query_string"].decode("latin-1")
            try:
                signed = await anyio.to_thread.run_sync(self._verify, headers, method, target, body)
            except SignatureError as exc:
                log.info("refused %s %s from terminal %s: %s", method, path,
                         headers.get("x-terminal-id", "?")[:64], exc)
                await _send_json(send, 401, {"error": "signature", "message": str(exc)},
                                 ((b"www-authenticate", b'Signature realm="govplatform"'),))
                return
            scope[SIGNED_BY] = signed

        sent = False

        async def replay() -> Message:
            nonlocal sent
            if not sent:
                sent = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        await self.app(scope, replay, send)

    @staticmethod
    async def _too_large(send: Send, size: int, limit: int, at_least: bool = False) -> None:
        what = f"more than {limit}" if at_least else str(size)
        await _send_json(send, 413, {"error": "body_too_large",
                                     "message": f"the request body is {what} bytes; this platform accepts at most "
                                                f"{limit} bytes (setting GOVPLATFORM_MAX_BODY_BYTES): send scans "
                                                "by reference, not inline"})

    # -- runs in a worker thread: database and SM2 are blocking -----------------------------------
    def _verify(self, headers: dict[str, str], method: str, target: str, body: bytes) -> SignedBy:
        platform = self.platform
        timestamp = headers.get("x-timestamp")
        if timestamp is not None and not (timestamp.isascii() and timestamp.isdigit() and len(timestamp) <= 12):
            raise SignatureError("X-Timestamp must be Unix seconds (decimal digits)")
        terminal_id = headers.get("x-terminal-id", "")
        key: tuple[str, str] | None = None
        if 0 < len(terminal_id) <= 64:
            with platform.db.session() as s:
                row = s.get(m.Terminal, terminal_id)
                if row is not None and row.active:
                    key = (row.algorithm, row.public_key)
        try:
            signed = check_headers(headers, method, target, body, lambda tid: key if tid == terminal_id else None,
                                   allowed=tuple(platform.settings.signature_algorithms))
        except (ValueError, TypeError, OverflowError) as exc:  # malformed headers are a refusal, never a 500
            raise SignatureError(f"malformed signature headers ({type(exc).__name__})") from None
        try:
            with platform.db.session() as s:
                seen = s.execute(select(m.Nonce.nonce).where(m.Nonce.terminal_id == signed.terminal_id,
                                                             m.Nonce.nonce == signed.nonce)).first() is not None
                if not seen:
                    utcnow = m.utcnow()
                    s.add(m.Nonce(terminal_id=signed.terminal_id, nonce=signed.nonce,
                                  timestamp=signed.timestamp, seen_at=utcnow))
                    terminal = s.get(m.Terminal, signed.terminal_id)
                    if terminal is not None and (terminal.last_seen_at is None or
                                                 utcnow - terminal.last_seen_at > dt.timedelta(minutes=1)):
                        terminal.last_seen_at = utcnow
        except IntegrityError:  # a concurrent request with the same nonce won the insert
            seen = True
        if seen:
            raise SignatureError(f"replayed request: nonce {signed.nonce} was already used within the last "
                                 f"{MAX_SKEW_S} s; sign every request with a fresh nonce")
        platform.upkeep()
        return signed
