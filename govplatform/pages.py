"""The public pages as HTML for a phone's browser: zh-CN first, English beside it.

Small by design: no scripts, no external resources, inline style only (the Content-Security-
Policy below allows nothing else), every value escaped. What a page may show is decided by
the models passed in (`Verification`, `Progress`): they carry no personal data beyond the
masked holder name and ID number of a certificate.

`wants_json` is the content negotiation: JSON only when the client prefers application/json
to text/html (an API client); a browser, curl's */* or no Accept header gets the page.
"""
from __future__ import annotations

import datetime as dt
from html import escape

from fastapi.responses import HTMLResponse, JSONResponse

from govplatform.runtime import CHINA
from govplatform.schemas import Progress, Text, Verification

HEADERS = {
    "Cache-Control": "no-store",
    "Vary": "Accept",
    "Referrer-Policy": "no-referrer",
    "X-Robots-Tag": "noindex, nofollow",
    "X-Content-Type-Options": "nosniff",
    "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; frame-ancestors 'none'",
}

STATUS_TEXT: dict[str, tuple[str, str]] = {
    "accepted": ("已受理", "Accepted"),
    "received": ("已接收", "Received"),
    "processing": ("办理中", "Being processed"),
    "completed": ("已办结", "Completed"),
    "rejected": ("不予受理", "Rejected"),
    "withdrawn": ("已撤回", "Withdrawn"),
}
ROLE_TEXT = {"lead": ("牵头部门", "lead"), "cooperating": ("配合部门", "cooperating")}

_STYLE = ("body{font-family:sans-serif;margin:0 auto;max-width:40em;padding:1em;line-height:1.5;color:#222}"
          "h1{font-size:1.3em}.en{color:#666;font-size:.9em}.ok{color:#0a6b2d}.no{color:#a61b1b}"
          "table{border-collapse:collapse;width:100%}th,td{text-align:left;padding:.3em;border-bottom:1px solid #ddd;"
          "vertical-align:top}th{width:35%;font-weight:normal;color:#555}")


def status_text(status: str) -> Text:
    zh, en = STATUS_TEXT.get(status, (status, status))
    return Text.model_validate({"zh-CN": zh, "en": en})


def _q(accept: str, wanted: str) -> float:
    """The quality the Accept header gives `wanted`, from its most specific matching range."""
    best, best_specificity = 0.0, -1
    major = wanted.split("/")[0]
    for part in accept.split(","):
        fields = [f.strip() for f in part.split(";")]
        media = fields[0].lower()
        if media == wanted:
            specificity = 2
        elif media == f"{major}/*":
            specificity = 1
        elif media == "*/*":
            specificity = 0
        else:
            continue
        q = 1.0
        for param in fields[1:]:
            name, _, value = param.partition("=")
            if name.strip().lower() == "q":
                try:
                    q = max(0.0, min(1.0, float(value)))
                except ValueError:
                    q = 0.0
        if specificity > best_specificity:
            best, best_specificity = q, specificity
    return best


def wants_json(accept: str | None) -> bool:
    if not accept:
        return False
    return _q(accept, "application/json") > _q(accept, "text/html")


def _bi(zh: str, en: str) -> str:
    return f'{escape(zh)} <span class="en">{escape(en)}</span>'


def _page(title_zh: str, title_en: str, body: str, status: int) -> HTMLResponse:
    html = (f'<!DOCTYPE html><html lang="zh-CN"><head><meta charset="utf-8">'
            f'<meta name="viewport" content="width=device-width,initial-scale=1">'
            f"<title>{escape(title_zh)} {escape(title_en)}</title><style>{_STYLE}</style></head>"
            f"<body><h1>{_bi(title_zh, title_en)}</h1>{body}</body></html>")
    return HTMLResponse(html, status_code=status, headers=HEADERS)


def _rows(pairs: list[tuple[str, str]]) -> str:
    return "<table>" + "".join(f"<tr><th>{label}</th><td>{value}</td></tr>" for label, value in pairs) + "</table>"


def _time(value: dt.datetime) -> str:
    return value.astimezone(CHINA).strftime("%Y-%m-%d %H:%M")


def verification_page(found: Verification) -> HTMLResponse:
    body = (f'<p class="ok"><strong>{_bi("有效", "Valid")}</strong></p>'
            + _rows([(_bi("证明名称", "Certificate"), _bi(found.title.zh_CN, found.title.en)),
                     (_bi("持证人", "Holder"), escape(found.holder.name)),
                     (_bi("公民身份号码", "ID number"), escape(found.holder.id_number)),
                     (_bi("出具单位", "Issued by"), escape(found.issuer)),
                     (_bi("出具时间", "Issued at"), escape(_time(found.issued_at)) + " (UTC+8)"),
                     (_bi("验证码", "Verification code"), escape(found.verification_code))])
            + f"<p>{_bi('请核对纸质证明上的信息与本页一致。', 'Check that the paper shows the same details.')}</p>")
    return _page("证明核验", "Certificate verification", body, 200)


def not_found_page(title_zh: str, title_en: str, what_zh: str, what_en: str) -> HTMLResponse:
    body = (f'<p class="no"><strong>{_bi("未找到", "Not found")}</strong></p>'
            f"<p>{_bi(what_zh, what_en)}</p>")
    return _page(title_zh, title_en, body, 404)


def progress_page(found: Progress) -> HTMLResponse:
    departments = "".join(
        f"<tr><td>{_bi(d.name.zh_CN, d.name.en)}<br>{_bi(*ROLE_TEXT[d.role])}</td>"
        f"<td>{_bi(d.status_text.zh_CN, d.status_text.en)}</td></tr>" for d in found.departments)
    body = (_rows([(_bi("办件编号", "Receipt number"), escape(found.receipt_number)),
                   (_bi("事项", "Service"), _bi(found.title.zh_CN, found.title.en)),
                   (_bi("办理状态", "Status"), _bi(found.status_text.zh_CN, found.status_text.en)),
                   (_bi("受理日期", "Accepted on"), escape(found.accepted_on.isoformat()))])
            + f"<h2>{_bi('各部门办理情况', 'Each department')}</h2><table>{departments}</table>")
    return _page("办件进度", "Application progress", body, 200)


def too_many_page(wait_s: int) -> HTMLResponse:
    body = f"<p>{_bi(f'查询过于频繁，请 {wait_s} 秒后再试。', f'Too many requests: try again in {wait_s} s.')}</p>"
    response = _page("请稍后再试", "Please wait", body, 429)
    response.headers["Retry-After"] = str(wait_s)
    return response


def json_answer(data: dict[str, object], status: int = 200, extra: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse(data, status_code=status, headers={**HEADERS, **(extra or {})})
