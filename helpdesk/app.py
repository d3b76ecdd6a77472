"""The console's web application: pages for staff (helpdesk/pages.py), the JSON API and live
updates behind them (helpdesk/api.py), sessions, security headers and errors in words.

Pages are rendered on the server in the staff member's language (helpdesk/texts.toml); the
fleet, alerts, queue and call pages then keep themselves current from `/api/events` (Server-
Sent Events: a snapshot first, then every change). Every action a staff member takes goes
through one JSON POST, is checked for role (fleet.protocol.ROLE_COMMANDS), origin and call
ownership on the server, is audited with its outcome, and is answered in words.
"""
from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.middleware.sessions import SessionMiddleware

from helpdesk import api, pages
from helpdesk.console import Console
from helpdesk.web import (
    SECURITY_HEADERS,
    ApiError,
    error_response,
    render,
    session_staff,
    text,
)

HERE = Path(__file__).resolve().parent
SESSION_COOKIE = "helpdesk_session"


def create_app(the_console: Console) -> FastAPI:
    """The ASGI app; its lifespan binds live events to the loop and starts the fleet bridge."""

    @contextlib.asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        the_console.hub.bind(asyncio.get_running_loop())
        the_console.start()
        try:
            yield
        finally:
            the_console.stop()

    app = FastAPI(title="Help desk console", lifespan=lifespan, docs_url=None, redoc_url=None, openapi_url=None)
    app.state.console = the_console
    app.add_middleware(SessionMiddleware, secret_key=the_console.session_secret, session_cookie=SESSION_COOKIE,
                       max_age=the_console.settings.session_max_age_s, same_site="strict",
                       https_only=the_console.settings.https_only)
    app.mount("/static", StaticFiles(directory=HERE / "static"), name="static")
    app.include_router(pages.build_router(the_console))
    app.include_router(api.build_router(the_console))

    @app.middleware("http")
    async def security_headers(request: Request, call_next: Any) -> Response:
        response: Response = await call_next(request)
        for key, value in SECURITY_HEADERS.items():
            response.headers.setdefault(key, value)
        return response

    @app.exception_handler(ApiError)
    async def api_error(request: Request, exc: ApiError) -> Response:
        if request.url.path.startswith("/api/"):
            return error_response(request, exc)
        if exc.status == 401:
            return RedirectResponse("/login", status_code=303)
        return render(request, "message.html", session_staff(request),
                      {"message": text(request, exc.key, **exc.values)}, status=exc.status)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> Response:
        if request.url.path.startswith("/api/") or exc.status_code != 404:
            return JSONResponse({"ok": False, "error": str(exc.detail)}, status_code=exc.status_code)
        return render(request, "message.html", session_staff(request), {"message": text(request, "error.not_found")},
                      status=404)

    return app
