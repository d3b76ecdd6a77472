"""One error shape for every 4xx/5xx: {"error", "message", "fields"?} (govapi/README.md).

Handlers here turn FastAPI's and Starlette's own errors into that shape, so a technician
reading a terminal's log sees what to fix; an unexpected error becomes a 500 whose log
line carries a reference and no personal data. Bad input must never get that far: every
check on input raises `ApiError` (4xx) or fails pydantic validation (422).
"""
from __future__ import annotations

import json
import logging
import secrets
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError, ResponseValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field
from pydantic.json_schema import SkipJsonSchema
from starlette.exceptions import HTTPException as StarletteHTTPException

from govplatform.privacy import mask_text, safe_traceback

log = logging.getLogger("govplatform.errors")


class FieldProblem(BaseModel):
    field: str = Field(description="where: a dotted body path (card.id_number, materials[2].provided), "
                                   "or query.<name> / header.<name> / path.<name>")
    problem: str


class ErrorBody(BaseModel):
    """Every error answer. `fields` comes with validation errors (422)."""

    error: str = Field(description="machine-readable code, e.g. signature, validation, not_found, "
                                   "idempotency_conflict, body_too_large")
    message: str = Field(description="what went wrong and what to do, for a technician")
    fields: list[FieldProblem] | SkipJsonSchema[None] = None


class ApiError(Exception):
    """A refusal with a status code; raised anywhere in a handler, rendered as ErrorBody."""

    def __init__(self, status: int, error: str, message: str, fields: list[dict[str, str]] | None = None,
                 headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status, self.error, self.message, self.fields, self.headers = status, error, message, fields, headers


def error_response(status: int, error: str, message: str, fields: list[dict[str, str]] | None = None,
                   headers: dict[str, str] | None = None) -> JSONResponse:
    body: dict[str, Any] = {"error": error, "message": message}
    if fields is not None:
        body["fields"] = fields
    return JSONResponse(body, status_code=status, headers=headers)


def invalid(field: str, problem: str) -> ApiError:
    """A 422 about one field, for checks pydantic cannot do (they need the catalogue or the database)."""
    return ApiError(422, "validation", f"{field}: {problem}", [{"field": field, "problem": problem}])


def invalid_many(problems: list[dict[str, str]]) -> ApiError:
    summary = "; ".join(f"{p['field']}: {p['problem']}" for p in problems[:5])
    more = f" (and {len(problems) - 5} more)" if len(problems) > 5 else ""
    return ApiError(422, "validation", f"the request is not valid: {summary}{more}", problems)


# -- OpenAPI: which errors an operation can answer ----------------------------------------------
_DESCRIPTIONS = {
    400: "Malformed request (body is not JSON, bad Content-Length)",
    401: "Unsigned, stale, replayed or badly signed request; or a missing/expired citizen token",
    403: "Not allowed (wrong enrolment code, token of another terminal, face check required)",
    404: "No such item, application or slot",
    409: "Idempotency key reused with another body, or the slot is taken",
    429: "Too many requests from this address; wait the seconds in Retry-After",
    413: "Request body larger than the platform's limit",
    422: "Request does not match the schema or the catalogue; `fields` says where",
    500: "Unexpected platform fault (logged with a reference; never caused by bad input)",
    503: "A service the platform depends on (e.g. the SMS gateway) is unavailable; retry later",
}


def errors(*codes: int, described: dict[int, str] | None = None) -> dict[int | str, dict[str, Any]]:
    """`responses=` for a route: each listed status with the ErrorBody model, plus what any
    request can get (400 unreadable, 413 too large, 500). `described` replaces the generic
    description of a status where the route's own reasons say more to an integrator."""
    texts = {**_DESCRIPTIONS, **(described or {})}
    return {code: {"model": ErrorBody, "description": texts[code]} for code in sorted({*codes, 400, 413, 500})}


# -- turning framework errors into ErrorBody -------------------------------------------------------
def _where(loc: tuple[Any, ...]) -> str:
    if not loc:
        return "body"
    head, rest = loc[0], loc[1:]
    path = ""
    for part in rest:
        path += f"[{part}]" if isinstance(part, int) else (f".{part}" if path else str(part))
    if head == "body":
        return path or "body"
    return f"{head}.{path}" if path else str(head)


def _problem(err: dict[str, Any]) -> str:
    kind = err.get("type", "")
    if kind == "missing":
        return "required"
    if kind == "extra_forbidden":
        return "not a known field: remove it"
    return str(err.get("msg", "invalid")).removeprefix("Value error, ")


async def _validation_error(_: Request, exc: RequestValidationError) -> JSONResponse:
    errs = list(exc.errors())
    for err in errs:
        if err.get("type") == "json_invalid":
            ctx = err.get("ctx") or {}
            detail = ctx.get("error", "invalid JSON")
            pos = err["loc"][1] if len(err.get("loc", ())) > 1 else "?"
            return error_response(400, "malformed_json",
                                  f"the request body is not valid JSON ({detail} at character {pos}): "
                                  "send UTF-8 JSON with Content-Type: application/json")
    problems = [{"field": _where(tuple(err.get("loc", ()))), "problem": _problem(err)} for err in errs]
    if len(problems) == 1 and problems[0]["field"] == "body" and problems[0]["problem"] == "required":
        return error_response(422, "validation", "this call needs a JSON body", problems)
    return error_response(422, "validation", invalid_many(problems).message, problems)


_STATUS_CODES = {400: "bad_request", 401: "unauthorised", 403: "forbidden", 404: "not_found",
                 405: "method_not_allowed", 406: "not_acceptable", 413: "body_too_large",
                 415: "unsupported_media_type"}


async def _http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
    code = _STATUS_CODES.get(exc.status_code, "error")
    if exc.status_code == 404 and exc.detail == "Not Found":
        message = f"no such endpoint: {request.method} {request.url.path} (see govapi/openapi.json)"
    elif exc.status_code == 405:
        message = f"{request.method} is not allowed on {request.url.path} (see govapi/openapi.json)"
    elif exc.status_code == 400 and "parsing the body" in str(exc.detail):
        code, message = "malformed_json", "the request body cannot be read as UTF-8 JSON"
    else:
        message = str(exc.detail)
    return error_response(exc.status_code, code, message, headers=getattr(exc, "headers", None))


async def _api_error(_: Request, exc: ApiError) -> JSONResponse:
    return error_response(exc.status, exc.error, exc.message, exc.fields, exc.headers)


def _describe(exc: BaseException) -> str:
    """The exception's text, unless it may quote input (pydantic errors carry input values)."""
    if isinstance(exc, ResponseValidationError):
        return "; ".join(f"{_where(tuple(e.get('loc', ())))}: {e.get('type')}" for e in exc.errors())
    from pydantic import ValidationError

    if isinstance(exc, ValidationError):
        return "; ".join(f"{_where(tuple(e.get('loc', ())))}: {e.get('type')}" for e in exc.errors())
    return mask_text(str(exc))[:500]


async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
    reference = secrets.token_hex(6)
    log.error("unexpected %s in %s %s (reference %s): %s\n%s", type(exc).__name__, request.method,
              request.url.path, reference, _describe(exc), mask_text(safe_traceback(exc)))
    return error_response(500, "internal", f"unexpected platform fault (reference {reference}); "
                                           "the platform log has the details")


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(RequestValidationError, _validation_error)  # type: ignore[arg-type]
    app.add_exception_handler(StarletteHTTPException, _http_error)  # type: ignore[arg-type]
    app.add_exception_handler(ApiError, _api_error)  # type: ignore[arg-type]
    app.add_exception_handler(Exception, _unexpected)


def json_dumps(value: Any) -> bytes:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
