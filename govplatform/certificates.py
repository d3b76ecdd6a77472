"""Certificates as data: what a kiosk prints for a catalogue item of kind "certificate".

`build_document` turns an application, the applicant's file and the facts of issue (code,
time, issuer, link) into a `CertificateDocument`: a title, the holder (ID number masked),
[label, value] summary lines, one table and notes, every text ready to print in zh-CN.
Layout is the kiosk's business. The same inputs always give the same document (the records
are derived deterministically, see `govplatform.records`), so the platform stores only the
SM3 digest of the canonical JSON and rebuilds the document when it is asked again.

One builder per certificate item id; a certificate item without a builder cannot be issued
by this platform (`Unavailable`), a person without the record behind it gets `NoRecord`.
"""
from __future__ import annotations

import datetime as dt
import json
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from cryptography.hazmat.primitives import hashes

from govapi.masking import mask_id_number
from govplatform import records as r
from govplatform.residents import Resident
from govplatform.runtime import CHINA
from govplatform.schemas import CertificateDocument
from govplatform.security import CODE_ALPHABET

CODE_LENGTH = 16  # 80 bits of Crockford base32
PERIOD_MONTHS: dict[str, int | None] = {"12m": 12, "36m": 36, "all": None}


class NoRecord(Exception):
    """The person's file holds nothing this certificate could state; the message says what is missing."""


class Unavailable(Exception):
    """The catalogue lists the certificate, but this platform has no records to issue it from."""


@dataclass(frozen=True)
class Issue:
    """The facts of one issue: fixed when first issued and stored, so a rebuild is identical."""

    code: str
    issued_at: dt.datetime  # aware
    issuer: str
    title: dict[str, str]
    verify_url: str


@dataclass(frozen=True)
class Content:
    summary: list[list[str]]
    columns: list[str]
    rows: list[list[str]]
    notes: list[str]


# -- verification codes ---------------------------------------------------------------------------
def new_verification_code() -> str:
    """16 characters of Crockford base32 (80 bits): unguessable, and nothing to misread when typed."""
    return "".join(secrets.choice(CODE_ALPHABET) for _ in range(CODE_LENGTH))


def normalise_verification_code(text: str) -> str | None:
    """The code as stored, from what someone typed (any case, spaces or dashes, O for 0, I/L for 1);
    None when it cannot be a code at all."""
    code = "".join(ch for ch in text.upper() if ch not in " -").translate(str.maketrans("OIL", "011"))
    if len(code) != CODE_LENGTH or any(ch not in CODE_ALPHABET for ch in code):
        return None
    return code


def verify_url(public_url: str, code: str) -> str:
    return f"{public_url.rstrip('/')}/verify/{code}"


# -- the document ---------------------------------------------------------------------------------
def canonical_json(document: CertificateDocument) -> bytes:
    """Sorted keys, no spaces, UTF-8 as is: the form the digest is taken over."""
    data = document.model_dump(mode="json", by_alias=True)
    return json.dumps(data, ensure_ascii=False, sort_keys=True, separators=(",", ":")).encode("utf-8")


def document_sm3(document: CertificateDocument) -> str:
    digest = hashes.Hash(hashes.SM3())
    digest.update(canonical_json(document))
    return digest.finalize().hex()


def build_document(item: dict[str, Any], answers: dict[str, str], holder_name: str, holder_id_number: str,
                   resident: Resident | None, issue: Issue) -> CertificateDocument:
    """The certificate for one application. Raises NoRecord or Unavailable."""
    builder = BUILDERS.get(item["id"])
    if builder is None:
        raise Unavailable(f"this platform keeps no records for certificate {item['id']!r}: it can issue "
                          f"{', '.join(sorted(BUILDERS))}")
    if resident is None:
        raise NoRecord("the platform holds no file for the applicant, so there is no record to certify: "
                       "the citizen should ask at a staffed counter")
    issued_on = issue.issued_at.astimezone(CHINA).date()
    content = builder(item, answers, resident, issued_on)
    notes = [*content.notes,
             f"本证明由{issue.issuer}出具，加盖电子印章，与窗口出具的证明具有同等效力。",
             (f"核验方式：手机扫描证明上的二维码，或访问 {issue.verify_url} ，核对验证码 {issue.code} "
              "及证明内容是否一致。"),
             "为保护个人信息，公民身份号码已部分隐去。",
             "本证明由参考平台根据合成演示数据生成，仅供测试使用。"]
    return CertificateDocument.model_validate({
        "kind": item["id"], "title": issue.title,
        "holder": {"name": holder_name, "id_number": mask_id_number(holder_id_number.upper())},
        "issuer": issue.issuer, "issued_at": issue.issued_at.astimezone(CHINA), "verification_code": issue.code,
        "verify_url": issue.verify_url, "summary": content.summary,
        "table": {"columns": content.columns, "rows": content.rows}, "notes": notes})


def _choice_label(item: dict[str, Any], key: str, value: str) -> str:
    for field in item["form"]:
        if field["key"] == key:
            for choice in field.get("choices") or []:
                if choice["value"] == value:
                    return str(choice["label"]["zh-CN"])
    return value


def _span(first: str, last: str) -> str:
    return f"{first} 至 {last}"


# -- 社会保险个人权益记录 ----------------------------------------------------------------------------
def _social_insurance(item: dict[str, Any], answers: dict[str, str], resident: Resident,
                      issued_on: dt.date) -> Content:
    if not resident.pension_scheme or not resident.contribution_years:
        raise NoRecord("the applicant's file shows no social insurance contributions: there is no record to print")
    record_type = answers.get("record_type", "contribution_proof")
    period = answers.get("period", "12m")
    months = PERIOD_MONTHS.get(period, 12)
    status = ("已退休（按月领取养老金）" if resident.receiving_pension else "已退休") if resident.retired else "正常参保"
    summary = [["证明类型", _choice_label(item, "record_type", record_type)]]
    if resident.pension_scheme == "resident":
        years = r.resident_contributions(resident, issued_on)
        shown = years if months is None else years[-max(1, months // 12):]
        summary += [["参保险种", "城乡居民基本养老保险"], ["参保状态", status],
                    ["累计缴费月数", str(len(years) * 12)], ["当前缴费单位", "个人缴费"],
                    ["查询期间", _span(f"{shown[0].year}年", f"{shown[-1].year}年")],
                    ["本期缴费年数", str(len(shown))]]
        if record_type == "rights_record":
            total = sum(y.grade + y.subsidy for y in years)
            summary.append(["个人账户累计储存额（元）", r.money(Decimal(total))])
        rows = [[f"{y.year}年", f"{y.grade}元/年", r.money(Decimal(y.grade)), r.money(Decimal(y.subsidy)), "个人缴费"]
                for y in shown]
        return Content(summary, ["年度", "缴费档次", "个人缴费", "政府补贴", "缴费单位"], rows,
                       ["城乡居民基本养老保险按年度缴费，表中每行为一个缴费年度。"])
    history = r.employee_contributions(resident, issued_on)
    shown_months = history if months is None else history[-months:]
    employer = "—（已退休）" if resident.retired else (resident.employer or "—")
    summary += [["参保险种", "职工基本养老保险、失业保险、工伤保险"], ["参保状态", status],
                ["累计缴费月数", str(len(history))], ["当前缴费单位", employer],
                ["查询期间", _span(r.month_text(shown_months[0].month), r.month_text(shown_months[-1].month))],
                ["本期缴费月数", str(len(shown_months))],
                ["本期单位缴纳合计（元）", r.money(sum((m.employer_part for m in shown_months), Decimal(0)))],
                ["本期个人缴纳合计（元）", r.money(sum((m.personal_part for m in shown_months), Decimal(0)))]]
    if record_type == "rights_record":
        summary.append(["个人账户累计储存额（元）", r.money(r.personal_account(history))])
    rows = [[r.month_text(m.month), r.money(m.base), r.money(m.employer_part), r.money(m.personal_part), m.employer]
            for m in shown_months]
    return Content(summary, ["年月", "缴费基数", "单位缴纳", "个人缴纳", "缴费单位"], rows,
                   [f"缴费记录截至{r.month_text(history[-1].month)}，当月缴费以实际到账为准。"])


# -- 住房公积金缴存证明 ------------------------------------------------------------------------------
def _mask_account(account: str) -> str:
    return account[:4] + "*" * max(len(account) - 8, 0) + account[-4:] if len(account) > 8 else account


def _housing_fund(item: dict[str, Any], answers: dict[str, str], resident: Resident,
                  issued_on: dt.date) -> Content:
    if not resident.housing_fund_account or not resident.contribution_years:
        raise NoRecord("the applicant's file shows no housing fund account: there is no deposit record to print")
    record_type = answers.get("record_type", "certificate")
    history = r.housing_deposits(resident, issued_on)
    shown = history[-12:] if record_type == "certificate" else history
    latest = history[-1]
    summary = [["证明类型", _choice_label(item, "record_type", record_type)],
               ["个人账号", _mask_account(resident.housing_fund_account)],
               ["缴存单位", resident.employer or "—"],
               ["账户状态", "封存" if resident.retired else "正常缴存"],
               ["开户年月", r.month_text(history[0].month)],
               ["缴存基数（元）", r.money(latest.base)],
               ["月缴存额（元）", r.money(latest.employer_part + latest.personal_part)],
               ["账户余额（元）", r.money(latest.balance)],
               ["余额截至", r.month_text(latest.month)],
               ["明细期间", _span(r.month_text(shown[0].month), r.month_text(shown[-1].month))]]
    rows = [[r.month_text(m.month), r.money(m.base), r.money(m.employer_part), r.money(m.personal_part),
             r.money(m.balance)] for m in shown]
    notes = ["缴存证明列出最近 12 个月的缴存明细；缴存明细列出开户以来的全部记录。",
             "账户余额含每年 6 月 30 日结算的利息。"]
    return Content(summary, ["年月", "缴存基数", "单位缴存", "个人缴存", "余额"], rows, notes)


# -- 不动产登记信息查询证明 ---------------------------------------------------------------------------
def _real_estate(item: dict[str, Any], answers: dict[str, str], resident: Resident,
                 issued_on: dt.date) -> Content:
    titles = [lic for lic in resident.licences if lic.type == "property_certificate"]
    found = f"名下有不动产登记记录 {len(titles)} 条" if titles else "名下无不动产登记记录"
    summary = [["查询用途", _choice_label(item, "purpose", answers.get("purpose", "other"))],
               ["查询范围", "本人名下已登记的不动产"],
               ["查询结果", found],
               ["查询时点", issued_on.isoformat()]]
    rows = [[str(n), lic.number, lic.issuer, "国有建设用地使用权/房屋所有权", "现势"]
            for n, lic in enumerate(titles, start=1)]
    return Content(summary, ["序号", "不动产权证书号", "登记机构", "权利类型", "权利状态"], rows,
                   ["查询结果为出具时点的登记信息，不作为不动产权属证明。"])


BUILDERS: dict[str, Callable[[dict[str, Any], dict[str, str], Resident, dt.date], Content]] = {
    "social-insurance-record": _social_insurance,
    "housing-fund-record": _housing_fund,
    "real-estate-record": _real_estate,
}
