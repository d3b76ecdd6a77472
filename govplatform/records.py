"""Synthetic contribution records behind the certificates: the same person gets the same numbers.

The demo resident file (`data/residents.toml`) says where a person works, which pension
scheme they are in and for how many years they have contributed, but holds no monthly
ledger. The reference platform derives one here, deterministically: the contribution base
comes from a hash of the ID number, contributions run back from the last month before the
reference date (or from retirement), and bases step down 5 % for every July adjustment
further back. So a certificate rebuilt from the same file and the same date is the same
document, byte for byte, which is what lets the platform store only its digest.

All figures are invented; the rates are the usual employee rates (pension 16 % + 8 %,
unemployment 0.5 % + 0.5 %, work injury 0.4 % employer only; housing fund 12 % + 12 %).
"""
from __future__ import annotations

import datetime as dt
import hashlib
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal

from govplatform.residents import Resident

CENT = Decimal("0.01")
EMPLOYER_RATE = Decimal("0.16") + Decimal("0.005") + Decimal("0.004")  # pension, unemployment, work injury
PERSONAL_RATE = Decimal("0.08") + Decimal("0.005")  # pension, unemployment
PERSONAL_PENSION_RATE = Decimal("0.08")  # what goes to the personal pension account
HOUSING_RATE = Decimal("0.12")  # each side
HOUSING_INTEREST = Decimal("0.015")  # a year, credited on 30 June
BASE_STEP = Decimal("0.95")  # each July adjustment further back
MIN_BASE = Decimal(3000)
RESIDENT_GRADES = ((200, 30), (300, 40), (500, 60), (800, 80), (1000, 100), (1500, 120), (2000, 150))


def money(value: Decimal) -> str:
    """Yuan with two decimals, rounded half up: how every amount is printed."""
    return f"{value.quantize(CENT, rounding=ROUND_HALF_UP):.2f}"


# -- months as integers (year * 12 + month - 1): arithmetic without a calendar library --------------
def month_of(day: dt.date) -> int:
    return day.year * 12 + day.month - 1


def month_text(month: int) -> str:
    """"2026-10"."""
    return f"{month // 12:04d}-{month % 12 + 1:02d}"


def _seed(resident: Resident, purpose: str) -> int:
    digest = hashlib.sha256(f"{purpose}\x00{resident.id_number.upper()}".encode()).digest()
    return int.from_bytes(digest[:8], "big")


def latest_base(resident: Resident) -> Decimal:
    """The current monthly contribution base: 5 000 to 10 000 yuan in steps of 100, per person."""
    return Decimal(5000 + _seed(resident, "base") % 51 * 100)


def base_in(resident: Resident, month: int, last: int) -> Decimal:
    """The base in `month` when `last` is the latest contribution month (bases change each July)."""
    years_back = (last - 6) // 12 - (month - 6) // 12
    base = latest_base(resident) * BASE_STEP ** years_back
    return max(MIN_BASE, (base / 10).quantize(Decimal(1), rounding=ROUND_HALF_UP) * 10)


def last_contribution_month(resident: Resident, reference: dt.date) -> int:
    """The month before `reference`; for a retired person, the month before statutory retirement."""
    if resident.retired:
        from govplatform.policies import load_policies, statutory_retirement

        schedule = resident.retirement_schedule or ("male" if resident.gender_code == "1" else "female_worker")
        _, retirement_date = statutory_retirement(resident.birth_date, schedule, load_policies().retirement)
        return min(month_of(retirement_date), month_of(reference)) - 1
    return month_of(reference) - 1


def months_on_file(resident: Resident) -> int:
    return (resident.contribution_years or 0) * 12


# -- employee social insurance ------------------------------------------------------------------
@dataclass(frozen=True)
class ContributionMonth:
    month: int
    base: Decimal
    employer_part: Decimal
    personal_part: Decimal
    employer: str


def employee_contributions(resident: Resident, reference: dt.date) -> list[ContributionMonth]:
    """Every month on file, oldest first."""
    last = last_contribution_month(resident, reference)
    out = []
    for month in range(last - months_on_file(resident) + 1, last + 1):
        base = base_in(resident, month, last)
        out.append(ContributionMonth(month, base, (base * EMPLOYER_RATE).quantize(CENT, ROUND_HALF_UP),
                                     (base * PERSONAL_RATE).quantize(CENT, ROUND_HALF_UP),
                                     resident.employer or "—"))
    return out


def personal_account(months: list[ContributionMonth]) -> Decimal:
    """The personal pension account (8 % of every base), without interest."""
    return sum(((m.base * PERSONAL_PENSION_RATE).quantize(CENT, ROUND_HALF_UP) for m in months), Decimal(0))


# -- residents' pension scheme (annual contributions by grade) -------------------------------------
@dataclass(frozen=True)
class ResidentYear:
    year: int
    grade: int  # the yearly amount the person chose, yuan
    subsidy: int  # the government's matching subsidy, yuan


def resident_contributions(resident: Resident, reference: dt.date) -> list[ResidentYear]:
    """One entry per contribution year, oldest first; the grade rises every few years."""
    last_year = last_contribution_month(resident, reference) // 12
    years = resident.contribution_years or 0
    start = _seed(resident, "grade") % 3
    out = []
    for n, year in enumerate(range(last_year - years + 1, last_year + 1)):
        grade, subsidy = RESIDENT_GRADES[min(len(RESIDENT_GRADES) - 1, start + n // 4)]
        out.append(ResidentYear(year, grade, subsidy))
    return out


# -- housing fund -------------------------------------------------------------------------------
@dataclass(frozen=True)
class DepositMonth:
    month: int
    base: Decimal
    employer_part: Decimal
    personal_part: Decimal
    balance: Decimal  # after this month's deposit (and the interest, in June)


def housing_deposits(resident: Resident, reference: dt.date) -> list[DepositMonth]:
    """Every month since the account was opened (with the first contribution), oldest first."""
    last = last_contribution_month(resident, reference)
    balance = Decimal(0)
    out = []
    for month in range(last - months_on_file(resident) + 1, last + 1):
        base = base_in(resident, month, last)
        part = (base * HOUSING_RATE).quantize(CENT, ROUND_HALF_UP)
        balance += part * 2
        if month % 12 == 5:  # June: the year's interest is credited on the 30th
            balance += (balance * HOUSING_INTEREST).quantize(CENT, ROUND_HALF_UP)
        out.append(DepositMonth(month, base, part, part, balance))
    return out
