"""The console's pages: login and logout, the language switch, fleet, alerts, queue and call.

Each page is rendered on the server in the staff member's language; its script then keeps it
current from /api/events (helpdesk/api.py).
"""
from __future__ import annotations

import asyncio
import datetime as dt

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from helpdesk.console import Console
from helpdesk.store import Staff
from helpdesk.web import (
    LANGUAGES,
    ApiError,
    check_form_origin,
    language,
    owned_call,
    render,
    session_staff,
    text,
)


def page_staff(request: Request) -> Staff:
    """The logged-in staff member; otherwise the page sends them to the login form."""
    staff = session_staff(request)
    if staff is None:
        raise ApiError(401, "error.login_required")
    return staff


def clock_text(when: float) -> str:
    return dt.datetime.fromtimestamp(when).strftime("%H:%M")


def build_router(the_console: Console) -> APIRouter:
    router = APIRouter()

    # -- login -----------------------------------------------------------------------------------
    @router.get("/login", response_class=HTMLResponse)
    async def login_page(request: Request, done: str = "") -> Response:
        if session_staff(request) is not None:
            return RedirectResponse("/", status_code=303)
        notice = text(request, "login.logged_out") if done == "out" else ""
        return render(request, "login.html", None, {"error": "", "notice": notice, "name": ""})

    @router.post("/login", response_class=HTMLResponse)
    async def login(request: Request, name: str = Form(""), password: str = Form("")) -> Response:
        name = name.strip()[:64]
        store = the_console.store
        if not check_form_origin(request):
            store.audit(name or "?", "login", "refused", details="login form not from this console (origin)")
            return render(request, "login.html", None, {"error": text(request, "login.bad_origin"), "notice": "",
                                                      "name": name}, status=403)
        result = await asyncio.to_thread(store.check_login, name, password, the_console.clock())
        if result.outcome == "ok" and result.staff is not None:
            lang = language(request)
            request.session.clear()
            request.session.update({"staff": result.staff.name, "sid": store.open_session(result.staff.name),
                                    "lang": lang})
            store.audit(result.staff.name, "login", "ok", details=f"role {result.staff.role}")
            return RedirectResponse("/", status_code=303)
        if result.outcome == "locked":
            store.audit(name or "?", "login", "locked", details="5 failed logins: locked for 15 min")
            message = text(request, "login.locked", until=clock_text(result.locked_until))
            status = 429
        elif result.outcome == "inactive":
            store.audit(name or "?", "login", "failed", details="account disabled")
            message, status = text(request, "login.inactive"), 401
        else:
            store.audit(name or "?", "login", "failed", details="wrong name or password")
            message, status = text(request, "login.wrong"), 401
        return render(request, "login.html", None, {"error": message, "notice": "", "name": name}, status=status)

    @router.post("/logout")
    async def logout(request: Request) -> Response:
        staff = session_staff(request)
        if staff is not None and check_form_origin(request):
            the_console.store.end_session(request.session.get("sid", ""))
            the_console.store.audit(staff.name, "logout", "ok")
            lang = language(request)
            request.session.clear()
            request.session["lang"] = lang
            return RedirectResponse("/login?done=out", status_code=303)
        return RedirectResponse("/login" if staff is None else "/", status_code=303)

    @router.get("/lang/{code}")
    async def switch_language(request: Request, code: str, next: str = "/") -> Response:
        if code in LANGUAGES:
            request.session["lang"] = code
        target = next if next.startswith("/") and not next.startswith("//") and "\\" not in next else "/"
        return RedirectResponse(target, status_code=303)

    # -- pages -----------------------------------------------------------------------------------
    @router.get("/", response_class=HTMLResponse)
    async def fleet_page(request: Request) -> Response:
        return render(request, "fleet.html", page_staff(request), {"page": "fleet"})

    @router.get("/alerts", response_class=HTMLResponse)
    async def alerts_page(request: Request) -> Response:
        return render(request, "alerts.html", page_staff(request), {"page": "alerts"})

    @router.get("/calls", response_class=HTMLResponse)
    async def calls_page(request: Request) -> Response:
        return render(request, "calls.html", page_staff(request), {"page": "calls"})

    @router.get("/calls/{terminal}/{call_id}", response_class=HTMLResponse)
    async def call_page(request: Request, terminal: str, call_id: str) -> Response:
        staff = page_staff(request)
        call = owned_call(request, staff, terminal, call_id, "view_call", allow_ended=True)
        info = the_console.fleet.terminal(terminal) or {}
        devices = [d["name"] for d in info.get("devices", [])]
        return render(request, "call.html", staff, {"page": "call", "call": call, "devices": devices,
                                                  "location": info.get("location", call.location)})

    return router
