"""What every console request shares: who the staff member is, what they may do, where the
request came from, and errors in the staff member's language.

Sessions: Starlette's signed cookie (itsdangerous) carries only the staff name, a session id
and the language; the session id must be open in the store, so logging out (or a supervisor
disabling an account) ends the cookie at once, and the role is read from the store on every
request. The cookie is HttpOnly and SameSite=Strict.

Cross-site requests: every state-changing API call is a JSON POST that must carry
``X-Requested-With: helpdesk`` (a header no other site can send without a CORS preflight,
which this server never grants) and, when the browser says where it comes from (Origin,
Sec-Fetch-Site), come from this very origin. The login and logout forms check the same origin.
"""
from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from fastapi import Request
from fastapi.responses import JSONResponse, Response
from fastapi.templating import Jinja2Templates

from fleet.protocol import ROLE_COMMANDS, ProtocolError, check_terminal_id
from helpdesk.store import Call, Staff, UnknownStaff

if TYPE_CHECKING:
    from helpdesk.console import Console

LANGUAGES = ("zh-CN", "en")
GOTO_STEPS = ("home", "choose", "notice", "form", "materials", "review")  # where staff may move a visit
TEMPLATES = Jinja2Templates(directory=Path(__file__).resolve().parent / "templates")
API_HEADER = ("x-requested-with", "helpdesk")

SECURITY_HEADERS = {
    "Cache-Control": "no-store",
    "Referrer-Policy": "same-origin",
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Content-Security-Policy": ("default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
                                "connect-src 'self'; media-src 'self' blob: mediastream:; object-src 'none'; "
                                "base-uri 'none'; form-action 'self'; frame-ancestors 'none'"),
}


class ApiError(Exception):
    """An answer in words: `key` is a text of helpdesk/texts.toml, `values` its placeholders."""

    def __init__(self, status: int, key: str, **values: Any) -> None:
        super().__init__(key)
        self.status = status
        self.key = key
        self.values = values


def console(request: Request) -> Console:
    return request.app.state.console  # type: ignore[no-any-return]


def language(request: Request) -> str:
    lang = request.session.get("lang")
    return lang if lang in LANGUAGES else "zh-CN"


def text(request: Request, key: str, **values: Any) -> str:
    return console(request).texts.get(key, language(request), **values)


def error_response(request: Request, exc: ApiError) -> JSONResponse:
    return JSONResponse({"ok": False, "error": text(request, exc.key, **exc.values)}, status_code=exc.status,
                        headers=SECURITY_HEADERS)


def session_staff(request: Request) -> Staff | None:
    """The logged-in staff member with their current role, or None."""
    name, sid = request.session.get("staff"), request.session.get("sid")
    if not isinstance(name, str) or not isinstance(sid, str):
        return None
    store = console(request).store
    if not store.session_open(sid, name):
        request.session.pop("staff", None)
        request.session.pop("sid", None)
        return None
    try:
        staff = store.staff(name)
    except UnknownStaff:
        return None
    return staff if staff.active else None


def require_staff(request: Request) -> Staff:
    staff = session_staff(request)
    if staff is None:
        raise ApiError(401, "error.login_required")
    return staff


def may(staff: Staff, action: str) -> bool:
    return action in ROLE_COMMANDS.get(staff.role, frozenset())


def require_action(request: Request, staff: Staff, action: str, *, terminal: str = "", call_id: str = "") -> None:
    """403 and an audit line when the staff member's role may not `action`."""
    if not may(staff, action):
        console(request).store.audit(staff.name, action, "refused", terminal=terminal, call_id=call_id,
                                     details=f"role {staff.role} may not {action}")
        raise ApiError(403, "error.forbidden", role=text(request, f"role.{staff.role}"))


def _same_origin(request: Request) -> bool:
    """The browser's own word on where a request comes from: Sec-Fetch-Site when it sends it,
    and Origin (a privacy-minded browser may say "null": then Sec-Fetch-Site must vouch)."""
    site = request.headers.get("sec-fetch-site")
    if site is not None and site not in ("same-origin", "none"):
        return False
    origin = request.headers.get("origin")
    if origin == "null":
        return site == "same-origin"
    if origin is not None:
        return origin == f"{request.url.scheme}://{request.headers.get('host', '')}"
    return True


def check_form_origin(request: Request) -> bool:
    """Login and logout forms: refused when the browser says they come from another site."""
    return _same_origin(request)


def check_api_request(request: Request, staff: Staff | None = None, action: str = "") -> None:
    """A state-changing API call: our header, JSON, same origin; refusals are audited."""
    name, value = API_HEADER
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if request.headers.get(name) != value or content_type != "application/json" or not _same_origin(request):
        if staff is not None:
            console(request).store.audit(staff.name, action or "api", "refused",
                                         details="request not from the console's page (origin/header check)")
        raise ApiError(403, "error.bad_origin")


def render(request: Request, name: str, staff: Staff | None, context: dict[str, Any], *, status: int = 200) -> Response:
    """A page in the staff member's language; its scripts get the same texts as JSON."""
    lang = language(request)
    texts = console(request).texts

    def t(key: str, **values: Any) -> str:
        return texts.get(key, lang, **values)

    js_texts = {k: texts.get(k, lang) for k in texts.keys()}
    ctx = {"t": t, "lang": lang, "other_lang": "en" if lang == "zh-CN" else "zh-CN", "staff": staff,
           "role_text": t(f"role.{staff.role}") if staff else "", "js_texts": js_texts,
           "may": (lambda action: staff is not None and may(staff, action)), "path": request.url.path,
           "goto_steps": GOTO_STEPS, **context}
    return TEMPLATES.TemplateResponse(request, name, ctx, status_code=status)


def owned_call(request: Request, staff: Staff, terminal: str, call_id: str, action: str, *,
               allow_ended: bool = False, audit_ok: bool = True) -> Call:
    """The call when `staff` may act on it: the one who accepted it, or a supervisor."""
    try:
        check_terminal_id(terminal)
        call = console(request).store.call(terminal, call_id)
    except (ProtocolError, LookupError):
        raise ApiError(404, "error.no_call") from None
    require_action(request, staff, "accept_call", terminal=terminal, call_id=call_id)
    if call.state == "waiting" or (call.staff != staff.name and staff.role != "supervisor"):
        console(request).store.audit(staff.name, action, "refused", terminal=terminal, call_id=call_id,
                                details=f"call held by {call.staff or 'nobody'}")
        raise ApiError(403, "error.not_yours", staff=call.staff_display or "-")
    if call.state == "ended" and not allow_ended:
        console(request).store.audit(staff.name, action, "refused", terminal=terminal, call_id=call_id,
                                details="call ended")
        raise ApiError(409, "error.call_ended")
    if audit_ok and action == "view_call":
        console(request).store.audit(staff.name, action, "ok", terminal=terminal, call_id=call_id)
    return call
