"""Policy matching "免申即享": which benefits a person gets or may claim, and why.

国发〔2024〕3号 (七) asks platforms to match policy conditions against shared data and
grant benefits without an application where the law allows, or else to push a prefilled
application. The rules are data (`data/policies.toml`); this module derives *facts* from
a person's file and evaluates the rules with a small evaluator of its own — no eval(),
only the comparison operators listed in OPERATORS over the facts listed in FACTS.
"""
from __future__ import annotations

import datetime as dt
import re
import threading
import tomllib
from pathlib import Path
from typing import Annotated, Any, Literal, Union

from pydantic import (BaseModel, ConfigDict, Discriminator, Field, Tag, ValidationError, field_validator,
                      model_validator)

from govplatform.residents import Resident

POLICIES_FILE = Path(__file__).resolve().parent / "data" / "policies.toml"


class PolicyError(ValueError):
    """The policy rules are malformed; the message names the file, the policy and the field."""


# -- facts --------------------------------------------------------------------------------------
# Every fact a rule may use, with a one-line meaning. None means "unknown for this person".
FACTS: dict[str, str] = {
    "age": "whole years of age today",
    "gender_code": '"1" male, "2" female',
    "id_type": "resident, hmt_permit, foreign_2017 or foreign_2023",
    "disability_level": "1-4 from the disability certificate, None without one",
    "disability_category": "视力, 听力, 言语, 肢体, 智力, 精神 or 多重; empty without a certificate",
    "low_income": "the household receives the minimum living allowance (低保)",
    "pension_scheme": '"employee", "resident" or ""',
    "contribution_years": "years of pension contributions, None when unknown",
    "retired": "has retired from employment",
    "receiving_pension": "already receives a pension",
    "retirement_date": "ISO date of reaching statutory retirement age",
    "retirement_age_years": "statutory retirement age, whole years",
    "retirement_age_months": "statutory retirement age, months beyond the whole years",
    "months_to_retirement": "whole months from today to retirement_date (negative once passed)",
    "min_contribution_years": "minimum contribution years for a monthly pension in the retirement year",
    "youngest_child_age_days": "age in days of the youngest child, None without children",
    "children_under_3": "number of children younger than 3",
    "licences": "list of e-licence types held",
    "enterprise_count": "number of enterprises the person represents",
}

OPERATORS = ("==", "!=", ">", ">=", "<", "<=", "in", "not_in", "contains")

Scalar = Union[bool, int, float, str]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)


class Text(_Strict):
    zh_CN: str = Field(alias="zh-CN", min_length=1)
    en: str = Field(min_length=1)


class Compare(_Strict):
    """fact OP value, or fact OP value_fact (another fact)."""

    fact: str
    op: Literal["==", "!=", ">", ">=", "<", "<=", "in", "not_in", "contains"]
    value: Scalar | list[Scalar] | None = None
    value_fact: str | None = None

    @field_validator("fact", "value_fact")
    @classmethod
    def _known_fact(cls, value: str | None) -> str | None:
        if value is not None and value not in FACTS:
            raise ValueError(f"unknown fact {value!r}; known: {', '.join(FACTS)}")
        return value

    @model_validator(mode="after")
    def _operand(self) -> "Compare":
        if (self.value is None) == (self.value_fact is None):
            raise ValueError(f"condition on {self.fact!r}: give exactly one of value or value_fact")
        if self.op in ("in", "not_in") and not isinstance(self.value, list):
            raise ValueError(f"condition on {self.fact!r}: {self.op!r} needs a list value")
        if self.op not in ("in", "not_in") and isinstance(self.value, list):
            raise ValueError(f"condition on {self.fact!r}: {self.op!r} needs a single value, not a list")
        return self


class AllOf(_Strict):
    all: list["Condition"] = Field(min_length=1)


class AnyOf(_Strict):
    any: list["Condition"] = Field(min_length=1)


class NotOf(_Strict):
    not_: "Condition" = Field(alias="not")


def _condition_kind(value: Any) -> str:
    """Pick the condition shape by its keys, so an error names one shape, not all four."""
    if isinstance(value, dict):
        for key in ("all", "any", "not"):
            if key in value:
                return key
        return "compare"
    return {AllOf: "all", AnyOf: "any", NotOf: "not"}.get(type(value), "compare")


Condition = Annotated[
    Union[Annotated[Compare, Tag("compare")], Annotated[AllOf, Tag("all")], Annotated[AnyOf, Tag("any")],
          Annotated[NotOf, Tag("not")]],
    Discriminator(_condition_kind),
]
AllOf.model_rebuild()
AnyOf.model_rebuild()
NotOf.model_rebuild()

_PLACEHOLDER = re.compile(r"\{([a-z_0-9]+)\}")


class Policy(_Strict):
    id: str = Field(pattern=r"^[a-z][a-z0-9-]*$")
    title: Text
    item_id: str | None = None  # catalogue item to apply with, when there is one
    status: Literal["granted_automatically", "eligible"]
    when: Condition
    reason: Text

    @field_validator("reason")
    @classmethod
    def _placeholders(cls, value: Text) -> Text:
        for text in (value.zh_CN, value.en):
            for name in _PLACEHOLDER.findall(text):
                if name not in FACTS:
                    raise ValueError(f"placeholder {{{name}}} is not a fact; known: {', '.join(FACTS)}")
        return value


class Schedule(_Strict):
    base_age_years: int = Field(ge=40, le=70)
    step_months: int = Field(ge=1)
    max_delay_months: int = Field(ge=0)


class MinimumContribution(_Strict):
    base_years: float = Field(ge=0)
    rise_from_year: int
    rise_months_per_year: int = Field(ge=0)
    max_years: float


class Retirement(_Strict):
    reform_start: dt.date
    schedules: dict[Literal["male", "female_cadre", "female_worker"], Schedule]
    minimum_contribution: MinimumContribution

    @field_validator("schedules")
    @classmethod
    def _all_schedules(cls, value: dict[str, Schedule]) -> dict[str, Schedule]:
        missing = {"male", "female_cadre", "female_worker"} - set(value)
        if missing:
            raise ValueError(f"missing schedule(s): {', '.join(sorted(missing))}")
        return value


class PolicyFile(_Strict):
    retirement: Retirement
    policy: list[Policy] = []


# -- loading --------------------------------------------------------------------------------
def _problems(exc: ValidationError) -> str:
    out = []
    for err in exc.errors():
        loc = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in err["loc"]).lstrip(".")
        msg = str(err["msg"]).removeprefix("Value error, ")
        out.append(f"field {loc}: {msg}" if loc else msg)
    # a union reports every branch; the shortest message is usually the one meant
    return "; ".join(dict.fromkeys(out))


def _load(path: Path) -> PolicyFile:
    try:
        with path.open("rb") as fh:
            raw = tomllib.load(fh)
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise PolicyError(f"{path}: cannot read the policy rules: {exc}") from None
    policies = raw.get("policy", [])
    if not isinstance(policies, list):
        raise PolicyError(f"{path}: policies must be [[policy]] tables")
    # each policy on its own, so the message names it
    for n, entry in enumerate(policies):
        pid = entry.get("id") if isinstance(entry, dict) else None
        try:
            Policy.model_validate(entry)
        except ValidationError as exc:
            raise PolicyError(f"{path}: policy {pid or '#' + str(n + 1)!r}: {_problems(exc)}") from None
    try:
        parsed = PolicyFile.model_validate(raw)
    except ValidationError as exc:
        raise PolicyError(f"{path}: {_problems(exc)}") from None
    ids = [p.id for p in parsed.policy]
    for pid in ids:
        if ids.count(pid) > 1:
            raise PolicyError(f"{path}: policy {pid!r}: field id: used twice")
    from govplatform.catalogue import get_item

    for p in parsed.policy:
        if p.item_id is not None and get_item(p.item_id) is None:
            raise PolicyError(f"{path}: policy {p.id!r}: field item_id: no catalogue item {p.item_id!r}")
    return parsed


_cache: dict[Path, PolicyFile] = {}
_lock = threading.Lock()


def load_policies(path: Path | None = None) -> PolicyFile:
    """The validated rules; the default file is read once."""
    key = Path(path).resolve() if path is not None else POLICIES_FILE
    with _lock:
        if key not in _cache:
            _cache[key] = _load(key)
        return _cache[key]


def reload_policies() -> None:
    """Forget the cached rules (after the data file changed)."""
    with _lock:
        _cache.clear()


# -- facts from a person's file ------------------------------------------------------------
def _add_months(day: dt.date, months: int) -> dt.date:
    """`day` plus whole months; the 31st (or 29 Feb) becomes the last day of a shorter month."""
    index = day.year * 12 + day.month - 1 + months
    year, month = divmod(index, 12)
    month += 1
    for d in (day.day, 30, 29, 28):
        try:
            return dt.date(year, month, d)
        except ValueError:
            continue
    raise ValueError("unreachable")


def statutory_retirement(birth_date: dt.date, schedule: str, rules: Retirement) -> tuple[int, dt.date]:
    """(retirement age in months, retirement date) under the gradual raise of the retirement age."""
    plan = rules.schedules[schedule]  # type: ignore[index]
    base_months = plan.base_age_years * 12
    original = _add_months(birth_date, base_months)
    start = rules.reform_start
    months_after = (original.year - start.year) * 12 + (original.month - start.month)
    delay = 0 if months_after < 0 else min(plan.max_delay_months, months_after // plan.step_months + 1)
    return base_months + delay, _add_months(birth_date, base_months + delay)


def minimum_contribution_years(year: int, rules: Retirement) -> float:
    """Minimum years of contributions for a monthly basic pension when retiring in `year`."""
    m = rules.minimum_contribution
    if year < m.rise_from_year:
        return m.base_years
    return min(m.max_years, m.base_years + (year - m.rise_from_year + 1) * m.rise_months_per_year / 12)


def _whole_months(start: dt.date, end: dt.date) -> int:
    """Whole months from `start` to `end` (negative when end is earlier)."""
    months = (end.year - start.year) * 12 + (end.month - start.month)
    if months > 0 and end.day < start.day:
        months -= 1
    elif months < 0 and end.day > start.day:
        months += 1
    return months


def facts_for(resident: Resident, today: dt.date, rules: Retirement | None = None) -> dict[str, Any]:
    """Every fact in FACTS for this person on `today`."""
    rules = rules or load_policies().retirement
    schedule = resident.retirement_schedule or ("male" if resident.gender_code == "1" else "female_worker")
    age_months, retirement_date = statutory_retirement(resident.birth_date, schedule, rules)
    children = [m for m in resident.household if m.relation == "child" and m.birth_date <= today]
    youngest = max(children, key=lambda m: m.birth_date) if children else None
    min_years = minimum_contribution_years(retirement_date.year, rules)
    return {
        "age": resident.age_on(today),
        "gender_code": resident.gender_code,
        "id_type": resident.id_type,
        "disability_level": resident.disability_level,
        "disability_category": resident.disability_category,
        "low_income": resident.low_income,
        "pension_scheme": resident.pension_scheme,
        "contribution_years": resident.contribution_years,
        "retired": resident.retired,
        "receiving_pension": resident.receiving_pension,
        "retirement_date": retirement_date.isoformat(),
        "retirement_age_years": age_months // 12,
        "retirement_age_months": age_months % 12,
        "months_to_retirement": _whole_months(today, retirement_date),
        "min_contribution_years": int(min_years) if float(min_years).is_integer() else min_years,
        "youngest_child_age_days": (today - youngest.birth_date).days if youngest else None,
        "children_under_3": sum(1 for c in children if _add_months(c.birth_date, 36) > today),
        "licences": sorted({lic.type for lic in resident.licences}),
        "enterprise_count": len(resident.enterprises),
    }


# -- the evaluator --------------------------------------------------------------------------
def _compare(left: Any, op: str, right: Any) -> bool:
    """One comparison; an unknown (None) operand, or operands of unlike types, never match."""
    if left is None or right is None:
        return False
    if op == "contains":
        return isinstance(left, (list, tuple, set, str)) and right in left
    if op in ("in", "not_in"):
        found = any(_compare(left, "==", r) for r in right)
        return found if op == "in" else not found
    numeric = (int, float)
    if isinstance(left, bool) or isinstance(right, bool):
        if not (isinstance(left, bool) and isinstance(right, bool)):
            return False
    elif isinstance(left, numeric) != isinstance(right, numeric):
        return False
    elif not isinstance(left, numeric) and type(left) is not type(right):
        return False
    if op == "==":
        return left == right
    if op == "!=":
        return left != right
    if isinstance(left, bool):
        return False  # booleans have no order
    if op == ">":
        return left > right
    if op == ">=":
        return left >= right
    if op == "<":
        return left < right
    if op == "<=":
        return left <= right
    raise ValueError(f"unknown operator {op!r}")


def evaluate(condition: Condition, facts: dict[str, Any]) -> bool:
    """Whether `condition` holds for these facts."""
    if isinstance(condition, Compare):
        right = facts.get(condition.value_fact) if condition.value_fact else condition.value
        return _compare(facts.get(condition.fact), condition.op, right)
    if isinstance(condition, AllOf):
        return all(evaluate(c, facts) for c in condition.all)
    if isinstance(condition, AnyOf):
        return any(evaluate(c, facts) for c in condition.any)
    if isinstance(condition, NotOf):
        return not evaluate(condition.not_, facts)
    raise TypeError(f"not a condition: {type(condition).__name__}")


def _fill(text: str, facts: dict[str, Any]) -> str:
    def value(match: re.Match[str]) -> str:
        v = facts.get(match.group(1))
        return "" if v is None else str(v)

    return _PLACEHOLDER.sub(value, text)


def match_benefits(resident: Resident | None, today: dt.date, path: Path | None = None) -> list[dict[str, Any]]:
    """The benefits this person is granted automatically or may claim, each with the reason.

    [{id, title{zh-CN,en}, reason{zh-CN,en}, status, item_id}], in the order of the rules.
    """
    if resident is None:
        return []
    rules = load_policies(path)
    facts = facts_for(resident, today, rules.retirement)
    out = []
    for policy in rules.policy:
        if evaluate(policy.when, facts):
            out.append({
                "id": policy.id,
                "title": {"zh-CN": policy.title.zh_CN, "en": policy.title.en},
                "reason": {"zh-CN": _fill(policy.reason.zh_CN, facts), "en": _fill(policy.reason.en, facts)},
                "status": policy.status,
                "item_id": policy.item_id,
            })
    return out


__all__ = ["FACTS", "OPERATORS", "PolicyError", "evaluate", "facts_for", "load_policies", "match_benefits",
           "minimum_contribution_years", "reload_policies", "statutory_retirement"]
