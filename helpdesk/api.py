"""The console's JSON API behind its pages: snapshots, live updates (SSE) and every staff action.

Every action is a JSON POST checked for the session, the origin (helpdesk/web.py), the role
(fleet.protocol.ROLE_COMMANDS) and, for a call, that the staff member holds it; it becomes one
signed command to the terminal, waits for the terminal's reply, and is audited with its outcome.
"""
from __future__ import annotations

import asyncio
import hashlib
import json
from collections.abc import AsyncIterator
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response, StreamingResponse

from fleet.protocol import (
    MAX_MESSAGE_CHARS,
    REFUSAL_CODES,
    ProtocolError,
    check_terminal_id,
)
from helpdesk.bridge import CommandFailed, NoAnswer, NotConnected, Refused
from helpdesk.console import Console
from helpdesk.events import FLEET, call_scope
from helpdesk.store import Call, CallTaken, Staff
from helpdesk.web import (
    GOTO_STEPS,
    ApiError,
    check_api_request,
    owned_call,
    require_action,
    require_staff,
    text,
)

KEEPALIVE_S = 15.0


def refusal_words(request: Request, exc: Refused) -> str:
    """Why the terminal said no, in the staff member's language when its code is known (the
    terminal's own English sentence otherwise)."""
    return text(request, f"refusal.{exc.code}") if exc.code in REFUSAL_CODES else str(exc)


def _sse(kind: str, data: dict[str, Any]) -> str:
    return f"event: {kind}\ndata: {json.dumps(data, ensure_ascii=False, separators=(',', ':'), default=str)}\n\n"


def build_router(the_console: Console) -> APIRouter:
    router = APIRouter()

    # -- reading APIs ----------------------------------------------------------------------------
    def fleet_snapshot() -> dict[str, Any]:
        calls = [c.as_dict() for c in the_console.store.open_calls()]
        recent = [c.as_dict() for c in the_console.store.recent_calls(20) if c.state == "ended"]
        health = the_console.bridge.health() if the_console.bridge else {"connected": False, "ignored": {}}
        return {"terminals": the_console.fleet.terminals(), "alerts": the_console.fleet.alerts()[:200],
                "calls": calls, "recent_calls": recent, "health": health, "now": the_console.clock()}

    def call_snapshot(call: Call) -> dict[str, Any]:
        live = the_console.calls.snapshot(call.terminal, call.call_id)
        return {"call": call.as_dict(), "live": live, "terminal": the_console.fleet.terminal(call.terminal),
                "now": the_console.clock()}

    @router.get("/api/snapshot")
    async def snapshot(request: Request) -> Response:
        require_staff(request)
        return JSONResponse(fleet_snapshot())

    @router.get("/api/calls/{terminal}/{call_id}")
    async def call_state(request: Request, terminal: str, call_id: str) -> Response:
        staff = require_staff(request)
        call = owned_call(request, staff, terminal, call_id, "view_call", allow_ended=True, audit_ok=False)
        return JSONResponse(call_snapshot(call))

    @router.get("/api/audit")
    async def audit_lines(request: Request, limit: int = 100) -> Response:
        staff = require_staff(request)
        if staff.role != "supervisor":
            the_console.store.audit(staff.name, "read_audit", "refused", details=f"role {staff.role}")
            raise ApiError(403, "error.forbidden", role=text(request, f"role.{staff.role}"))
        return JSONResponse({"lines": the_console.store.audit_lines(max(1, min(limit, 1000)))})

    @router.get("/api/health")
    async def health() -> Response:
        connected = bool(the_console.bridge and the_console.bridge.connected.is_set())
        return JSONResponse({"ok": True, "broker_connected": connected})

    @router.get("/api/events")
    async def events(request: Request, call: str = "") -> Response:
        staff = require_staff(request)
        if call:
            terminal, _, call_id = call.partition("/")
            the_call = owned_call(request, staff, terminal, call_id, "view_call", allow_ended=True, audit_ok=False)
            scopes = {call_scope(terminal, call_id)}

            def first() -> dict[str, Any]:
                return call_snapshot(the_console.store.call(the_call.terminal, the_call.call_id))
        else:
            scopes = {FLEET}
            first = fleet_snapshot
        hub = the_console.hub
        sid = request.session.get("sid", "")
        sub = hub.subscribe(scopes)

        async def stream() -> AsyncIterator[str]:
            try:
                yield _sse("snapshot", first())
                while True:
                    try:
                        item = await asyncio.wait_for(sub.queue.get(), KEEPALIVE_S)
                    except TimeoutError:
                        if not the_console.store.session_open(sid, staff.name):
                            return  # logged out elsewhere
                        yield ": keep-alive\n\n"
                        continue
                    if item is None:
                        return
                    kind, data = item
                    yield f"event: {kind}\ndata: {data}\n\n"
            finally:
                hub.unsubscribe(sub)

        return StreamingResponse(stream(), media_type="text/event-stream",
                                 headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"})

    # -- acting ----------------------------------------------------------------------------------
    async def body(request: Request) -> dict[str, Any]:
        try:
            data = await request.json()
        except ValueError:
            raise ApiError(400, "error.bad_request", reason="body is not JSON") from None
        if not isinstance(data, dict):
            raise ApiError(400, "error.bad_request", reason="body is not a JSON object")
        return data

    async def send(request: Request, staff: Staff, terminal: str, action: str, args: dict[str, Any], *,
                   audit_action: str, call_id: str = "", details: str = "") -> dict[str, Any]:
        """Send a signed command, wait for the terminal, audit the outcome, answer in words."""
        store = the_console.store
        bridge = the_console.bridge
        timeout = the_console.settings.reply_timeout_s
        try:
            if bridge is None:
                raise NotConnected("the console runs without a fleet broker")
            reply = await bridge.command(terminal, action, args, staff, timeout_s=timeout)
        except ProtocolError as exc:
            store.audit(staff.name, audit_action, "invalid", terminal=terminal, call_id=call_id,
                        details=f"{details} {exc}".strip())
            raise ApiError(400, "error.bad_request", reason=str(exc)) from None
        except CommandFailed as exc:
            outcome = {NotConnected: "not_connected", NoAnswer: "no_answer", Refused: "refused_by_terminal"}.get(
                type(exc), "failed")
            store.audit(staff.name, audit_action, outcome, terminal=terminal, call_id=call_id,
                        details=f"{details} {exc}".strip())
            if isinstance(exc, NoAnswer):
                raise ApiError(504, "error.no_answer", terminal=terminal, seconds=f"{timeout:.0f}") from None
            if isinstance(exc, Refused):
                raise ApiError(409, "error.refused", reason=refusal_words(request, exc)) from None
            raise ApiError(exc.status, "error.not_connected") from None
        store.audit(staff.name, audit_action, "ok", terminal=terminal, call_id=call_id, details=details)
        return {"ok": True, "cmd_id": reply.cmd_id}

    def prepare(request: Request, terminal: str, call_id: str, action: str, audit_action: str) -> tuple[Staff, Call]:
        staff = require_staff(request)
        check_api_request(request, staff, audit_action)
        require_action(request, staff, action, terminal=terminal, call_id=call_id)
        return staff, owned_call(request, staff, terminal, call_id, audit_action)

    def publish_call(call: Call) -> None:
        live = the_console.calls.snapshot(call.terminal, call.call_id)
        data = {**call.as_dict(), "consent": live["consent"]}
        the_console.hub.publish(FLEET, "call", data)
        the_console.hub.publish(call_scope(call.terminal, call.call_id), "call", data)

    def note(call: Call, kind: str, shown: str, staff: Staff) -> dict[str, Any]:
        entry = the_console.calls.note(call.terminal, call.call_id, kind, shown, staff.display_name)
        the_console.hub.publish(call_scope(call.terminal, call.call_id), "transcript", entry)
        return entry

    @router.post("/api/calls/{terminal}/{call_id}/accept")
    async def accept(request: Request, terminal: str, call_id: str) -> Response:
        staff = require_staff(request)
        check_api_request(request, staff, "accept")
        require_action(request, staff, "accept_call", terminal=terminal, call_id=call_id)
        store = the_console.store
        try:
            check_terminal_id(terminal)
            call = store.claim_call(terminal, call_id, staff, the_console.clock())
        except (ProtocolError, LookupError):
            raise ApiError(404, "error.no_call") from None
        except CallTaken:
            current = store.call(terminal, call_id)
            store.audit(staff.name, "accept", "refused", terminal=terminal, call_id=call_id,
                        details=f"already {current.state} ({current.staff or 'nobody'})")
            if current.state == "ended":
                raise ApiError(409, "error.call_ended") from None
            raise ApiError(409, "error.taken", staff=current.staff_display) from None
        publish_call(call)
        try:
            await send(request, staff, terminal, "accept_call", {"call_id": call_id, "staff_name": staff.display_name},
                       audit_action="accept", call_id=call_id)
        except ApiError:
            store.release_call(terminal, call_id, staff.name)
            publish_call(store.call(terminal, call_id))
            raise
        return JSONResponse({"ok": True, "url": f"/calls/{terminal}/{call_id}"})

    @router.post("/api/calls/{terminal}/{call_id}/message")
    async def message(request: Request, terminal: str, call_id: str) -> Response:
        staff, call = prepare(request, terminal, call_id, "message", "message")
        words = str((await body(request)).get("text", "")).strip()
        if not 0 < len(words) <= MAX_MESSAGE_CHARS:
            raise ApiError(400, "error.bad_request", reason=f"1 to {MAX_MESSAGE_CHARS} characters")
        # the audit keeps the length and a fingerprint, not the words: staff may repeat a citizen's name
        fingerprint = hashlib.sha256(words.encode("utf-8")).hexdigest()[:16]
        await send(request, staff, terminal, "message", {"call_id": call_id, "text": words}, audit_action="message",
                   call_id=call_id, details=f"{len(words)} chars, sha256 {fingerprint}")
        return JSONResponse({"ok": True, "entry": note(call, "message", words, staff)})

    @router.post("/api/calls/{terminal}/{call_id}/point")
    async def point(request: Request, terminal: str, call_id: str) -> Response:
        staff, call = prepare(request, terminal, call_id, "point", "point")
        data = await body(request)
        try:
            x, y = float(data["x"]), float(data["y"])
        except (KeyError, TypeError, ValueError):
            raise ApiError(400, "error.bad_request", reason="x and y are numbers from 0 to 1") from None
        await send(request, staff, terminal, "point", {"call_id": call_id, "x": x, "y": y}, audit_action="point",
                   call_id=call_id, details=f"x={x:.3f} y={y:.3f}")
        return JSONResponse({"ok": True, "entry": note(call, "point", text(request, "call.pointed"), staff)})

    @router.post("/api/calls/{terminal}/{call_id}/goto")
    async def goto(request: Request, terminal: str, call_id: str) -> Response:
        staff, call = prepare(request, terminal, call_id, "goto_step", "goto")
        step = str((await body(request)).get("step", ""))
        if step not in GOTO_STEPS:
            raise ApiError(400, "error.bad_request", reason=f"step is one of {', '.join(GOTO_STEPS)}")
        await send(request, staff, terminal, "goto_step", {"call_id": call_id, "step": step}, audit_action="goto",
                   call_id=call_id, details=f"step {step}")
        shown = text(request, "call.moved", step=text(request, f"step.{step}"))
        return JSONResponse({"ok": True, "entry": note(call, "goto", shown, staff)})

    @router.post("/api/calls/{terminal}/{call_id}/consent")
    async def ask_consent(request: Request, terminal: str, call_id: str) -> Response:
        staff, call = prepare(request, terminal, call_id, "ask_consent", "consent_request")
        await send(request, staff, terminal, "ask_consent", {"call_id": call_id}, audit_action="consent_request",
                   call_id=call_id)
        return JSONResponse({"ok": True, "entry": note(call, "consent", text(request, "call.consent_requested"),
                                                      staff)})

    @router.post("/api/calls/{terminal}/{call_id}/end")
    async def end(request: Request, terminal: str, call_id: str) -> Response:
        staff, call = prepare(request, terminal, call_id, "end_call", "end_call")
        outcome: dict[str, Any] = {"ok": True}
        try:
            await send(request, staff, terminal, "end_call", {"call_id": call_id}, audit_action="end_call",
                       call_id=call_id)
        except ApiError as exc:
            if exc.status not in (503, 504):
                raise
            # the terminal cannot be told now: the call still ends here (the kiosk ends it when it comes back
            # or its visit ends)
            outcome["warning"] = text(request, exc.key, **exc.values)
        ended = the_console.store.end_call(terminal, call_id, "staff_ended", the_console.clock())
        if ended is not None:
            publish_call(ended)
        return JSONResponse(outcome)

    @router.post("/api/calls/{terminal}/{call_id}/media")
    async def media(request: Request, terminal: str, call_id: str) -> Response:
        staff, call = prepare(request, terminal, call_id, "media_offer", "media_start")
        sdp = (await body(request)).get("sdp")
        if not isinstance(sdp, str) or not sdp.strip():
            raise ApiError(400, "error.bad_request", reason="sdp (the WebRTC offer) is missing")
        bridge = the_console.bridge
        store = the_console.store
        timeout = the_console.settings.media_timeout_s
        the_console.calls.set_media(terminal, call_id, "starting")
        try:
            if bridge is None:
                raise NotConnected("the console runs without a fleet broker")
            answer = await bridge.media_offer(terminal, call_id, sdp, staff, timeout_s=timeout)
        except ProtocolError as exc:
            store.audit(staff.name, "media_start", "invalid", terminal=terminal, call_id=call_id, details=str(exc))
            the_console.calls.set_media(terminal, call_id, "failed")
            raise ApiError(400, "error.bad_request", reason=str(exc)) from None
        except CommandFailed as exc:
            outcome = {NoAnswer: "no_answer", Refused: "refused_by_terminal"}.get(type(exc), "not_connected")
            store.audit(staff.name, "media_start", outcome, terminal=terminal, call_id=call_id, details=str(exc))
            the_console.calls.set_media(terminal, call_id, "failed")
            if isinstance(exc, NoAnswer):
                raise ApiError(504, "error.no_answer", terminal=terminal, seconds=f"{timeout:.0f}") from None
            if isinstance(exc, Refused):
                raise ApiError(409, "error.refused", reason=refusal_words(request, exc)) from None
            raise ApiError(503, "error.not_connected") from None
        store.audit(staff.name, "media_start", "ok", terminal=terminal, call_id=call_id)
        the_console.calls.set_media(terminal, call_id, "on")
        return JSONResponse({"ok": True, "sdp": answer})

    @router.post("/api/calls/{terminal}/{call_id}/media/stop")
    async def media_stop(request: Request, terminal: str, call_id: str) -> Response:
        staff, call = prepare(request, terminal, call_id, "media_stop", "media_stop")
        the_console.calls.set_media(terminal, call_id, "stopped")
        return JSONResponse(await send(request, staff, terminal, "media_stop", {"call_id": call_id},
                                       audit_action="media_stop", call_id=call_id))

    def terminal_action(request: Request, terminal: str, action: str, audit_action: str) -> Staff:
        staff = require_staff(request)
        check_api_request(request, staff, audit_action)
        try:
            check_terminal_id(terminal)
        except ProtocolError:
            raise ApiError(400, "error.unknown_terminal", terminal=terminal[:64]) from None
        require_action(request, staff, action, terminal=terminal)
        if the_console.fleet.terminal(terminal) is None:
            the_console.store.audit(staff.name, audit_action, "refused", terminal=terminal, details="unknown terminal")
            raise ApiError(404, "error.unknown_terminal", terminal=terminal)
        return staff

    @router.post("/api/terminals/{terminal}/restart")
    async def restart_device(request: Request, terminal: str) -> Response:
        staff = terminal_action(request, terminal, "restart_device", "restart_device")
        device = str((await body(request)).get("device", "")).strip()
        if not device or len(device) > 40:
            raise ApiError(400, "error.bad_request", reason="name the device to restart")
        result = await send(request, staff, terminal, "restart_device", {"device": device},
                            audit_action="restart_device", details=f"device {device}")
        return JSONResponse({**result, "message": text(request, "fleet.done", terminal=terminal)})

    @router.post("/api/terminals/{terminal}/reset")
    async def reset_visit(request: Request, terminal: str) -> Response:
        staff = terminal_action(request, terminal, "reset_visit", "reset_visit")
        result = await send(request, staff, terminal, "reset_visit", {}, audit_action="reset_visit")
        return JSONResponse({**result, "message": text(request, "fleet.done", terminal=terminal)})

    return router
