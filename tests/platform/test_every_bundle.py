"""Every "一件事" bundle of the reference platform's seeded catalogue is completed by a scripted visit.

For each catalogue item of kind "bundle" a scenario (the TOML that kiosk/scenario.py plays,
kept under artifacts/scenarios/<item>.toml for people to read) is generated from the
catalogue and the platform's resident store, then played by the headless runner: the real
terminal in this process on emulated devices (ID-card reader over a pty, the document camera
filming a page on its base) against the real platform process.

The citizen is the holder of one of the ID-card emulator's valid resident cards whose file the
platform holds, the one the bundle fits best (most of its required fields and materials known
to the state). The visit: start, card (face check off), their own page loaded from the
platform, browse, find the bundle (some by search, some by a filter), notice, the form (every
required field the card and the platform did not fill is typed, with a valid value for its
type), materials (e-licences found by themselves; what is missing is promised where the item
allows it, otherwise the paper is laid on the document camera and scanned), review, confirm,
the platform's receipt, card taken, rating, attract. Then the platform's own database and API
must hold the application as the visit left it: answers, each material provided as planned,
the scans stored, the promises as commitments, a task for every department, and the rating.
"""
from __future__ import annotations

import datetime as dt
import io
import json
import os
import re
import subprocess
import sys
import tomllib
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from govplatform_harness import CARDS, ROOT, SAMPLE_VALUES, Server, Terminal

from config.loader import load_config
from config.schema import KioskConfig
from govapi.form_values import value_problem
from govplatform.catalogue import load_catalogue
from govplatform.residents import Resident, load_residents, resolve_source
from kiosk.scenario import Runner, Scenario

TERMINAL_ID = "T-BUNDLES-01"
ARTIFACTS = ROOT / "artifacts" / "scenarios"
CATALOGUE = load_catalogue()
BUNDLES = {item["id"]: item for item in CATALOGUE["items"] if item["kind"] == "bundle"}
DOCUMENTS = ("form", "notice")  # the pages the document camera emulator can lay on its base
SCAN_WITHIN_S = 30  # the document camera's own time limit is 20 s
CARD_KEYS = ("card_type", "id_number", "name", "birth_date", "gender_code", "nation_code", "address",
             "appended_address", "valid_from", "valid_to", "issuer")


# -- who comes to the terminal -----------------------------------------------------------------------
@dataclass(frozen=True)
class Citizen:
    card: str  # devices/idcard/cards/<card>.toml
    read: dict[str, Any]  # the card as the kiosk reads it and sends it to the platform
    resident: Resident  # the platform's file of the holder

    @property
    def licences(self) -> set[str]:
        """The e-licence types the visit finds: the platform's list, and the resident ID card just read."""
        return {lic.type for lic in self.resident.licences} | ({"id_card"} if self.read["card_type"] == "resident"
                                                                else set())


def citizens(today: dt.date) -> list[Citizen]:
    """Holders of the emulator's valid resident cards that the platform has a file for, in file order."""
    out = []
    for resident in load_residents().values():
        path = CARDS / f"{resident.emulator_card}.toml"
        if not resident.emulator_card or not path.exists():
            continue
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
        read = {k: (raw[k].isoformat() if isinstance(raw[k], dt.date) else raw[k]) for k in CARD_KEYS if k in raw}
        valid_to = raw.get("valid_to")
        if read["card_type"] != "resident" or (isinstance(valid_to, dt.date) and valid_to < today):
            continue
        assert read["id_number"] == resident.id_number, f"card {resident.emulator_card} is not its holder's"
        out.append(Citizen(resident.emulator_card, read, resident))
    return out


def known(item: dict[str, Any], citizen: Citizen) -> dict[str, str]:
    """The form fields the card and the platform fill for this citizen (well-formed values only)."""
    out = {}
    for f in item["form"]:
        value = resolve_source(f["source"], citizen.resident, citizen.read)
        if value is not None and value_problem(f["type"], value, (c["value"] for c in f.get("choices") or [])) is None:
            out[f["key"]] = value
    return out


def fit(item: dict[str, Any], citizen: Citizen) -> int:
    """How much of the bundle the state already knows for this citizen: the one it fits best is
    the one the bundle is for (the newborn's mother, the enterprise's legal representative, ...)."""
    filled = known(item, citizen)
    return (sum(1 for f in item["form"] if f["required"] and f["key"] in filled)
            + sum(1 for m in item["materials"] if m["required"] and m.get("e_licence") in citizen.licences))


# -- the plan of one visit ---------------------------------------------------------------------------
@dataclass
class Plan:
    item: dict[str, Any]
    citizen: Citizen
    find: tuple[str, ...]  # ("search", query), ("filter", kind, value) or ("list",)
    prefilled: dict[str, str]  # field -> the value the card or the platform gives
    typed: dict[str, str]  # field -> what the citizen types
    provided: dict[str, str]  # material -> "e_licence", "scan", "promise" or "" (optional, left out)
    steps: list[dict[str, Any]] = field(default_factory=list)

    @property
    def scanned(self) -> list[str]:
        return [k for k, v in self.provided.items() if v == "scan"]

    @property
    def promised(self) -> list[str]:
        return [k for k, v in self.provided.items() if v == "promise"]


def sample(f: dict[str, Any]) -> str:
    """A valid value of the field's type, as a citizen would type or pick it."""
    if f["type"] == "choice":
        return str(f["choices"][0]["value"])
    if f["type"] == "text":
        return f"测试{f['label']['zh-CN']}"
    return SAMPLE_VALUES[f["type"]]


def how_found(n: int, item: dict[str, Any]) -> tuple[str, ...]:
    """Vary how the citizen finds the bundle: by words of its title, by life event, by category, or
    in the full list."""
    way = n % 4
    if way == 0:
        return ("search", item["title"]["zh-CN"].removesuffix("一件事")[:6])
    if way == 1 and item.get("life_event"):
        return ("filter", "life_event", item["life_event"])
    if way == 2 and item.get("category"):
        return ("filter", "category", item["category"])
    if way == 3:
        return ("search", item["title"]["en"].split()[0].lower())
    return ("list",)


def plan_for(item_id: str, today: dt.date) -> Plan:
    item = BUNDLES[item_id]
    people = citizens(today)
    assert people, "no valid resident test card whose holder the platform knows"
    citizen = max(people, key=lambda c: fit(item, c))  # the first of the best
    prefilled = known(item, citizen)
    typed = {f["key"]: sample(f) for f in item["form"] if f["required"] and f["key"] not in prefilled}
    provided = {}
    for m in item["materials"]:
        if m.get("e_licence") in citizen.licences:
            provided[m["id"]] = "e_licence"
        elif not m["required"]:
            provided[m["id"]] = ""
        else:
            provided[m["id"]] = "promise" if m.get("promise_allowed") else "scan"
    plan = Plan(item, citizen, how_found(list(BUNDLES).index(item_id), item), prefilled, typed, provided)
    plan.steps = steps_of(plan)
    return plan


def steps_of(plan: Plan) -> list[dict[str, Any]]:
    item, sid = plan.item, plan.item["id"]
    found_before = {m: v for m, v in plan.provided.items() if v in ("e_licence", "")}
    steps: list[dict[str, Any]] = [
        {"do": "press", "button": "start"},
        {"do": "expect", "step": "identify"},
        {"do": "place_card", "card": plan.citizen.card},
        {"do": "expect", "step": "home", "home": "ready"},  # the citizen's own page, from the platform
        {"do": "press", "button": "browse"},
        {"do": "expect", "step": "choose"},
    ]
    if plan.find[0] == "search":
        steps.append({"do": "search", "query": plan.find[1]})
    elif plan.find[0] == "filter":
        steps.append({"do": "filter", "kind": plan.find[1], "value": plan.find[2]})
    steps += [
        {"do": "expect", "step": "choose", "services_include": [sid]},
        {"do": "choose", "service": sid},
    ]
    if item.get("notice") or item.get("steps"):
        steps += [{"do": "expect", "step": "notice"}, {"do": "press", "button": "next"}]
    if item["form"]:
        steps.append({"do": "expect", "step": "form"})
        if plan.typed:
            steps.append({"do": "fill", "values": dict(plan.typed)})
        steps.append({"do": "press", "button": "next"})
    if item["materials"]:
        steps.append({"do": "expect", "step": "materials", "materials": found_before})
        for n, mat in enumerate(plan.scanned):
            steps += [
                {"do": "device", "device": "scanner", "call": "place", "args": [DOCUMENTS[n % len(DOCUMENTS)]]},
                {"do": "scan", "material": mat},
                {"do": "expect", "step": "materials", "materials": {mat: "scan"}, "within_s": SCAN_WITHIN_S},
            ]
        for mat in plan.promised:
            steps.append({"do": "promise", "material": mat})
        steps += [{"do": "expect", "step": "materials", "materials": dict(plan.provided)},
                  {"do": "press", "button": "next"}]
    steps += [
        {"do": "expect", "step": "review"},
        {"do": "press", "button": "confirm"},
        {"do": "expect", "step": "finish", "receipt": r"SQ[0-9]{14}"},
        {"do": "remove_card"},
        {"do": "expect", "step": "rating"},
        {"do": "rate", "level": 5},
        {"do": "expect", "step": "attract", "notice": "rating.thanks"},
    ]
    return steps


# -- the scenario file ---------------------------------------------------------------------------------
_BARE = re.compile(r"^[A-Za-z0-9_-]+$")


def _toml(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)  # a JSON string is a TOML basic string
    if isinstance(value, list):
        return "[" + ", ".join(_toml(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{ " + ", ".join(f"{k if _BARE.match(k) else _toml(k)} = {_toml(v)}" for k, v in value.items()) + " }"
    raise TypeError(f"no TOML for {value!r}")


def scenario_text(plan: Plan) -> str:
    item, who = plan.item, plan.citizen
    lines = [
        f"# Generated by tests/platform/test_every_bundle.py from the seeded catalogue: {item['title']['zh-CN']}",
        f"# ({item['title']['en']}), completed by {who.resident.name} with the emulator's card {who.card!r}.",
        "# Typed: " + (", ".join(plan.typed) or "nothing (the card and the platform filled the form)") + ".",
        "# Materials: " + ", ".join(f"{m} {how or 'left out (optional)'}" for m, how in plan.provided.items()) + ".",
        f"name = {_toml(item['id'] + ': ' + item['title']['zh-CN'])}",
        "",
    ]
    for step in plan.steps:
        lines.append("[[steps]]")
        lines += [f"{k} = {_toml(v)}" for k, v in step.items()]
        lines.append("")
    return "\n".join(lines)


# -- fixtures ----------------------------------------------------------------------------------------
@dataclass
class Kiosk:
    data_dir: Path
    server: Server
    desk: Terminal  # the platform as another terminal sees it (to read a citizen's application)

    def config(self) -> KioskConfig:
        return load_config(environ={
            "KIOSK__TERMINAL__ID": TERMINAL_ID, "KIOSK__TERMINAL__DATA_DIR": str(self.data_dir),
            "KIOSK__PLATFORM__URL": self.server.url, "KIOSK__PLATFORM__TIMEOUT_S": "5",
            "KIOSK__VOICE__ENABLED": "false", "KIOSK__FACE__ENABLED": "false",
            "KIOSK__DEVICES__CAMERA__ENABLED": "false", "KIOSK__DEVICES__QR_SCANNER__ENABLED": "false",
            "KIOSK__DEVICES__RECEIPT_PRINTER__ENABLED": "false", "KIOSK__DEVICES__A4_PRINTER__ENABLED": "false",
            "KIOSK__DEVICES__SCANNER__ENABLED": "true"})


@pytest.fixture(scope="module")
def kiosk(server: Server, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Kiosk]:
    """One enrolled terminal for every bundle (each visit starts it anew on the same data dir)."""
    data_dir = tmp_path_factory.mktemp("bundles-kiosk")
    code = server.cli("enrolment-code", "--terminal-id", TERMINAL_ID).stdout.strip()
    env = {"KIOSK__TERMINAL__ID": TERMINAL_ID, "KIOSK__TERMINAL__DATA_DIR": str(data_dir),
           "KIOSK__PLATFORM__URL": server.url, "PATH": os.environ.get("PATH", "/usr/bin:/bin")}
    done = subprocess.run([sys.executable, "-m", "provisioning", "enrol", "--code", code], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stdout + done.stderr
    yield Kiosk(data_dir, server, server.enrol())


def stored(server: Server, receipt: str) -> dict[str, Any]:
    """The application as the platform's database holds it."""
    from sqlalchemy import create_engine, text

    engine = create_engine(server.db_url)
    try:
        with engine.connect() as conn:
            row = conn.execute(text("SELECT item_id, terminal_id, citizen_id_number, answers, materials, commitments "
                                    "FROM applications WHERE receipt_number = :r"), {"r": receipt}).mappings().one()
    finally:
        engine.dispose()
    return {k: (json.loads(v) if k in ("answers", "materials", "commitments") and isinstance(v, str) else v)
            for k, v in row.items()}


def deliver_the_rating(kiosk: Kiosk, cfg: KioskConfig) -> None:
    """The runner stops the terminal as soon as the attract screen is back; what its outbox still
    holds (the rating) is delivered here, by the same terminal's link, as its next start would."""
    from kiosk.platform_link import PlatformLink

    link = PlatformLink(cfg, kiosk.data_dir)
    try:
        link.deliverer.drain()
        states = link.outbox.counts()
    finally:
        link.stop()
    assert states["pending"] == 0 and states["rejected"] == 0, states


# -- the test ----------------------------------------------------------------------------------------
def test_the_seeded_catalogue_has_bundles() -> None:
    assert len(BUNDLES) >= 13, sorted(BUNDLES)  # the 一件事 the reference platform ships


@pytest.mark.parametrize("item_id", list(BUNDLES))
def test_every_bundle_is_completed_by_a_scripted_visit(item_id: str, kiosk: Kiosk, tmp_path: Path) -> None:
    plan = plan_for(item_id, dt.date.today())
    text = scenario_text(plan)
    path = tmp_path / f"{item_id}.toml"
    path.write_text(text, encoding="utf-8")
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    (ARTIFACTS / f"{item_id}.toml").write_text(text, encoding="utf-8")

    cfg = kiosk.config()
    scanner = cfg.devices["scanner"]  # the terminal's own scanner, as config/defaults.toml sets it up
    assert scanner.enabled and scanner.device_class == "scanner" and scanner.driver == "document_camera"
    out = io.StringIO()
    runner = Runner(cfg, out=out)
    result = runner.run(Scenario.load(path))
    (ARTIFACTS / f"{item_id}.log").write_text(out.getvalue(), encoding="utf-8")
    assert result.passed, f"{result.failure}\n{out.getvalue()}"
    receipt = next(v.receipt for v in reversed(runner.views) if v.step.value == "finish" and v.receipt)
    assert re.fullmatch(r"SQ\d{14}", receipt or "")

    # the form the citizen saw: the card's fields read-only, the rest open to correction
    form = next(v for v in reversed(runner.views) if v.step.value == "review").fields
    card_fields = {f["key"] for f in plan.item["form"] if f["source"].startswith("identity.")}
    assert {f.key for f in form if not f.editable} == {k for k in card_fields if k in plan.prefilled}

    # the platform's record
    app = stored(kiosk.server, receipt)
    assert app["item_id"] == item_id and app["terminal_id"] == TERMINAL_ID
    assert app["citizen_id_number"] == plan.citizen.resident.id_number
    answers = app["answers"]
    for key, value in plan.prefilled.items():
        assert answers.get(key) == value, f"{key}: prefilled {value!r}, the application says {answers.get(key)!r}"
    for key, value in plan.typed.items():
        assert answers.get(key) == value, f"{key}: typed {value!r}, the application says {answers.get(key)!r}"
    materials = {m["id"]: m for m in app["materials"]}
    assert {k: m["provided"] for k, m in materials.items()} == {k: v for k, v in plan.provided.items() if v}
    held = {lic.type: lic.number for lic in plan.citizen.resident.licences}
    for mat in plan.item["materials"]:
        given = materials.get(mat["id"])
        if given and given["provided"] == "e_licence":
            assert given["reference"] == held.get(mat["e_licence"], plan.citizen.read["id_number"])
        elif given and given["provided"] == "scan":
            digest = given["reference"].removeprefix("scan:")
            assert re.fullmatch(r"[0-9a-f]{64}", digest), given
            assert kiosk.server.db_count("SELECT count(*) FROM scans WHERE sha256 = :d AND media_type = 'image/jpeg' "
                                         "AND terminal_id = :t", d=digest, t=TERMINAL_ID) == 1
    if len(plan.scanned) <= len(DOCUMENTS):  # another page laid on the camera for each: another scan
        assert len({materials[m]["reference"] for m in plan.scanned}) == len(plan.scanned)
    assert sorted(c["material_id"] for c in app["commitments"]) == sorted(plan.promised)

    # what the citizen (and the progress page) sees: accepted, every department has its part
    token = kiosk.desk.identify(dict(plan.citizen.read))["citizen_token"]
    detail = kiosk.desk.call("GET", f"/v1/applications/{receipt}", token=token).json()
    assert detail["status"] == "accepted" and detail["item_id"] == item_id
    departments = [plan.item["lead_department"]["id"]] + [d["id"] for d in plan.item["cooperating_departments"]]
    assert [d["department"] for d in detail["departments"]] == departments
    assert sorted(c["material_id"] for c in detail["commitments"]) == sorted(plan.promised)

    # the rating (好差评) went through the outbox, about this application
    deliver_the_rating(kiosk, cfg)
    assert kiosk.server.db_count("SELECT count(*) FROM ratings WHERE receipt_number = :r AND level = 5 AND "
                                 "item_id = :i AND terminal_id = :t", r=receipt, i=item_id, t=TERMINAL_ID) == 1
