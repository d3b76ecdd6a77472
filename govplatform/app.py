"""The FastAPI application of the reference platform.

`create_app(settings)` connects to the database (running migrations to head), loads or
creates the token secret, seeds appointment slots, and wires the routers, the signature
middleware and the uniform error handlers. The OpenAPI document it generates is the
contract in `govapi/openapi.json` (a test keeps the two equal).
"""
from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi

from govplatform import catalogue as catalogue_data
from govplatform.api import (
    applications,
    appointments,
    catalogue,
    certificates,
    checkin,
    citizens,
    consultations,
    health,
    public,
    ratings,
    scans,
    sms,
    terminals,
)
from govplatform.errors import install_error_handlers
from govplatform.middleware import SignedRequestMiddleware, needs_signature
from govplatform.ratelimit import RateLimiter
from govplatform.runtime import Platform
from govplatform.settings import PLATFORM_VERSION, Settings
from govplatform.sms import load_gateway

log = logging.getLogger("govplatform")

DESCRIPTION = """\
The government service platform API that self-service kiosks call (国发〔2024〕3号 "高效办成一件事").

Every `/v1` call except `GET /v1/health` and `POST /v1/terminals/enrol` is signed by the
terminal (headers `X-Terminal-Id`, `X-Timestamp`, `X-Nonce`, `X-Signature-Alg`,
`X-Signature`; see `govapi/signing.py`); unsigned, stale, replayed or badly signed requests
get 401 `{"error": "signature"}`. Submissions carry an `Idempotency-Key`. Every error is
`{"error", "message", "fields"?}`. Rules: `govapi/README.md`.

Outside `/v1`, two public pages for citizens' phones need no signature: `GET /verify/{code}`
(is a certificate genuine) and `GET /progress/{number}` (how far an application has got).
They answer HTML, or JSON to clients that prefer `application/json`, and are rate-limited
per client address.
"""


def create_app(settings: Settings | None = None, platform: Platform | None = None) -> FastAPI:
    """Build the app; `platform` may be given (tests, bench) to share an open database."""
    settings = settings or Settings()
    catalogue_data.use_extra_dir(settings.catalogue_dir)  # before anything reads the catalogue
    platform = platform or Platform.open(settings)
    platform.upkeep(force=True)

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        yield
        platform.db.dispose()

    app = FastAPI(title="Government service platform (reference)", version=PLATFORM_VERSION,
                  description=DESCRIPTION, lifespan=lifespan, docs_url="/docs", redoc_url=None,
                  openapi_url="/openapi.json")
    app.state.platform = platform
    app.state.sms_gateway = load_gateway(settings, platform.secret)
    app.state.public_rate_limiter = RateLimiter(settings.public_rate_limit_per_minute)
    for module in (health, terminals, citizens, catalogue, scans, applications, certificates, sms, ratings,
                   consultations, appointments, checkin, public):
        app.include_router(module.router)
    install_error_handlers(app)
    app.add_middleware(SignedRequestMiddleware, platform=platform)
    app.openapi = lambda: openapi_document(app)  # type: ignore[method-assign]
    return app


def openapi_document(app: FastAPI) -> dict[str, Any]:
    """The contract as FastAPI generates it from the routes and models, plus the server URL."""
    if app.openapi_schema:
        return app.openapi_schema
    doc = get_openapi(title=app.title, version=app.version, description=app.description, routes=app.routes)
    doc["servers"] = [{"url": "http://127.0.0.1:8780", "description": "local reference platform (default)"}]
    app.openapi_schema = doc
    return doc


def is_signed(method: str, path: str) -> bool:
    return needs_signature(method, path)
