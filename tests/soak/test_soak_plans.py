"""The soak's plans on their own (no terminal): what it asks of the platform must be possible."""
from __future__ import annotations

import random
import tomllib
from pathlib import Path

from govplatform.catalogue import load_catalogue
from kiosk.catalogue import Catalogue
from kiosk.soak import CITIZENS, Planner

ROOT = Path(__file__).resolve().parents[2]


def test_no_certificate_is_asked_for_someone_the_platform_has_no_record_of() -> None:
    """A long soak asked 李四 for a housing fund record: the platform rightly had none and the
    soak called the calm "not available" an error. The planner now leaves such pairs out, and
    the citizens' `no_record` sets match the reference platform's residents."""
    residents = {r.get("emulator_card"): r for r in tomllib.loads(
        (ROOT / "govplatform" / "data" / "residents.toml").read_text(encoding="utf-8"))["resident"]}
    for citizen in CITIZENS:
        if citizen.device != "idcard":
            continue
        has_fund = bool(residents[citizen.card].get("housing_fund_account"))
        assert ("housing-fund-record" in citizen.no_record) is not has_fund, citizen
    planner = Planner(Catalogue.from_platform(load_catalogue()).services(), random.Random(11), face_share=0.5)
    by_card = {c.card: c for c in CITIZENS}
    asked = 0
    for _ in range(30):
        for plan in planner.round():
            cards = [s["card"] for s in plan.steps if s.get("do") == "place_card"]
            if plan.item and cards:
                assert plan.item not in by_card[cards[0]].no_record, (plan.label, cards[0])
                asked += plan.item == "housing-fund-record"
    assert asked > 0
