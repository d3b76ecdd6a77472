"""The reference platform's domain data: catalogue, resident files, prefill, policy matching.

These check the promises the data makes to terminals: the 13 key "一件事" items of 2024
are all there and complete, every text is bilingual, every prefill source resolves,
every promised material has its commitment, malformed data fails with a message naming
file, item and field, and "免申即享" matching says who gets what and why.
"""
from __future__ import annotations

import datetime as dt
import shutil
import tomllib
from pathlib import Path
from typing import Any, Iterator

import pytest

from devices.idcard.identity import validate_id_number
from govplatform import catalogue as cat
from govplatform import policies as pol
from govplatform import residents as res

ROOT = Path(__file__).resolve().parents[2]
CARDS_DIR = ROOT / "devices" / "idcard" / "cards"
TODAY = dt.date(2026, 12, 1)

KEY_ITEMS_2024 = {
    "enterprise-info-change": "企业信息变更",
    "transport-enterprise-start": "开办运输企业",
    "restaurant-start": "开办餐饮店",
    "bankruptcy-info-check": "企业破产信息核查",
    "business-deregistration": "经营主体注销登记",
    "credit-repair": "企业信用修复",
    "utilities-connection": "水电气网联合报装",
    "newborn": "新生儿出生",
    "school-enrolment": "教育入学",
    "social-security-card": "社会保障卡居民服务",
    "disability-services": "残疾人服务",
    "retirement": "退休",
    "second-hand-house-transfer": "二手房转移登记及水电气网联合过户",
}


# -- helpers -------------------------------------------------------------------------------------
def _card_file(name: str) -> dict[str, Any]:
    with (CARDS_DIR / f"{name}.toml").open("rb") as fh:
        return tomllib.load(fh)


def _identify_dict(card: dict[str, Any]) -> dict[str, Any]:
    """A card file as the platform's identify call carries it (dates ISO, as IdentityCard.as_dict)."""
    keys = ("card_type", "id_number", "name", "birth_date", "gender_code", "nation_code", "address",
            "valid_from", "valid_to", "issuer")
    return {k: (card[k].isoformat() if isinstance(card.get(k), dt.date) else card.get(k, "")) for k in keys}


def _card_for(person: res.Resident) -> dict[str, Any]:
    """The card dict of a resident: the emulator's card when there is one, else made from the file."""
    if person.emulator_card:
        return _identify_dict(_card_file(person.emulator_card))
    return {"card_type": person.id_type, "id_number": person.id_number, "name": person.name,
            "birth_date": person.birth_date.isoformat(), "gender_code": person.gender_code,
            "address": person.household_address or person.residence_address}


def _texts(node: Any, path: str = "") -> Iterator[tuple[str, Any]]:
    """Every {zh-CN, en}-shaped dict in a JSON tree, with where it is."""
    if isinstance(node, dict):
        if "zh-CN" in node or "en" in node:
            yield path, node
        for k, v in node.items():
            yield from _texts(v, f"{path}.{k}")
    elif isinstance(node, list):
        for n, v in enumerate(node):
            yield from _texts(v, f"{path}[{n}]")


def _copy_catalogue(tmp_path: Path) -> Path:
    target = tmp_path / "catalogue"
    shutil.copytree(cat.DATA_DIR / "catalogue", target)
    return target


def _gb32100(code: str) -> bool:
    """An independent GB 32100 check, written from the standard's weights."""
    chars = "0123456789ABCDEFGHJKLMNPQRTUWXY"
    weights = [pow(3, i, 31) for i in range(17)]  # 1, 3, 9, 27, 19, 26, 16, ...
    if len(code) != 18 or any(c not in chars for c in code):
        return False
    check = (31 - sum(chars.index(c) * w for c, w in zip(code[:17], weights)) % 31) % 31
    return chars[check] == code[17]


@pytest.fixture(scope="module")
def catalogue() -> dict[str, Any]:
    return cat.load_catalogue()


@pytest.fixture(scope="module")
def people() -> dict[str, res.Resident]:
    return res.load_residents()


# -- catalogue -----------------------------------------------------------------------------------
def test_the_13_key_items_of_2024_are_complete_bundles(catalogue: dict[str, Any]) -> None:
    items = {i["id"]: i for i in catalogue["items"]}
    for item_id, zh in KEY_ITEMS_2024.items():
        assert item_id in items, f"key item {zh} ({item_id}) is missing"
        item = items[item_id]
        assert item["kind"] == "bundle"
        assert zh in item["title"]["zh-CN"]
        assert item["form"] and item["materials"] and item["steps"], item_id
        assert item["lead_department"]["id"] and item["lead_department"]["zh-CN"], item_id
        assert item["cooperating_departments"], item_id
        assert len(item["includes"]) >= 2, item_id
        assert item["category"] in ("个人", "企业")
        assert item["time_limit_days"] > 0
        involved = {item["lead_department"]["id"], *(d["id"] for d in item["cooperating_departments"])}
        assert {i["department"]["id"] for i in item["includes"]} <= involved
        # the applicant types little: free text only where the state cannot know it yet
        typed = [f["key"] for f in item["form"] if not f["source"] and f["type"] != "choice"]
        assert len(typed) <= 4, (item_id, typed)
        assert any(f["source"].startswith("identity.") for f in item["form"]), item_id


def test_kiosk_services_are_there(catalogue: dict[str, Any]) -> None:
    kinds = {i["id"]: i["kind"] for i in catalogue["items"]}
    assert kinds["social-insurance-record"] == "certificate"
    assert kinds["housing-fund-record"] == "certificate"
    assert kinds["real-estate-record"] == "certificate"
    assert kinds["application-progress"] == "lookup"
    assert kinds["appointment"] == "appointment"
    assert "service" in kinds.values()


def test_the_newborn_bundle_has_its_departments(catalogue: dict[str, Any]) -> None:
    item = cat.get_item("newborn")
    assert item is not None
    assert item["lead_department"]["id"] == "health"
    assert {d["id"] for d in item["cooperating_departments"]} == {"public_security", "medical_insurance", "human_resources"}
    assert item["life_event"] == "出生"


def test_item_shape_is_the_interface(catalogue: dict[str, Any]) -> None:
    fields = {"id", "kind", "title", "category", "life_event", "summary", "notice", "steps", "form", "materials",
              "lead_department", "cooperating_departments", "time_limit_days", "includes"}
    for item in catalogue["items"]:
        assert set(item) == fields, item["id"]
        for f in item["form"]:
            assert {"key", "label", "type", "required", "source"} <= set(f)
            assert f["type"] in cat.FIELD_TYPES
            assert ("choices" in f) == (f["type"] == "choice")
        for m in item["materials"]:
            assert set(m) == {"id", "title", "e_licence", "promise_allowed", "commitment", "required"}
    assert isinstance(catalogue["version"], str) and len(catalogue["version"]) == 16


def test_every_text_has_zh_cn_and_en(catalogue: dict[str, Any]) -> None:
    count = 0
    for where, text in _texts(catalogue["items"]):
        count += 1
        assert isinstance(text.get("zh-CN"), str) and text["zh-CN"].strip(), f"{where} lacks zh-CN"
        assert isinstance(text.get("en"), str) and text["en"].strip(), f"{where} lacks en"
    assert count > 500
    for item in catalogue["items"]:
        for text in (item["title"], item["summary"], item["notice"], *item["steps"]):
            assert set(text) == {"zh-CN", "en"}


def test_every_promised_material_has_its_commitment(catalogue: dict[str, Any]) -> None:
    promised = 0
    for item in catalogue["items"]:
        for m in item["materials"]:
            if m["promise_allowed"]:
                promised += 1
                assert m["commitment"]["zh-CN"] and m["commitment"]["en"], (item["id"], m["id"])
                assert "承诺" in m["commitment"]["zh-CN"]
            else:
                assert m["commitment"] is None
    assert promised >= 10


def test_e_licences_named_by_materials_exist(catalogue: dict[str, Any]) -> None:
    types = cat.licence_types()
    used = {m["e_licence"] for i in catalogue["items"] for m in i["materials"] if m["e_licence"]}
    assert used <= set(types)
    assert {"business_licence", "id_card", "household_register", "birth_certificate", "marriage_certificate",
            "property_certificate", "disability_certificate"} <= used


def test_every_prefill_source_resolves_for_some_resident(catalogue: dict[str, Any], people: dict[str, res.Resident]) -> None:
    sources = {f["source"] for i in catalogue["items"] for f in i["form"] if f["source"]}
    assert any(s.startswith("enterprise.") for s in sources)
    assert any(s.startswith("licence.") for s in sources)
    unresolved = {s for s in sources
                  if not any(res.resolve_source(s, p, _card_for(p)) for p in people.values())}
    assert not unresolved, f"no resident resolves {sorted(unresolved)}"


def test_prefilled_choice_values_are_among_the_choices(catalogue: dict[str, Any], people: dict[str, res.Resident]) -> None:
    for item in catalogue["items"]:
        choices = {f["key"]: {c["value"] for c in f["choices"]} for f in item["form"] if f["type"] == "choice"}
        for person in people.values():
            for key, filled in res.prefill(item, person, _card_for(person)).items():
                if key in choices:
                    assert filled["value"] in choices[key], (item["id"], key, filled["value"])


def test_version_is_a_content_hash_and_answers_are_copies(tmp_path: Path) -> None:
    first = cat.load_catalogue()
    first["items"].clear()
    assert cat.load_catalogue()["items"], "the cache must not be changed through an answer"
    assert cat.load_catalogue()["version"] == first["version"]
    copy_dir = _copy_catalogue(tmp_path)
    assert cat.load_catalogue(copy_dir)["version"] == first["version"]
    path = copy_dir / "30-kiosk.toml"
    path.write_text(path.read_text(encoding="utf-8").replace("预约窗口办理", "预约到窗口办理", 1), encoding="utf-8")
    cat.reload_catalogue()
    assert cat.load_catalogue(copy_dir)["version"] != first["version"]
    assert cat.get_item("no-such-item") is None


def test_a_new_service_is_data_only(tmp_path: Path) -> None:
    copy_dir = _copy_catalogue(tmp_path)
    (copy_dir / "40-extra.toml").write_text('''
[[item]]
id = "medical-insurance-record"
kind = "certificate"
title = { zh-CN = "医保参保证明打印", en = "Print medical insurance record" }
category = "个人"
life_event = "社会保障"
summary = { zh-CN = "打印医保参保证明。", en = "Print proof of medical insurance." }
notice = { zh-CN = "只能打印本人证明。", en = "Only your own record." }
steps = [{ zh-CN = "打印", en = "Print" }]
form = [{ key = "name", label = { zh-CN = "姓名", en = "Name" }, type = "text", source = "identity.name" }]
lead_department = "medical_insurance"
time_limit_days = 0
''', encoding="utf-8")
    item = cat.get_item("medical-insurance-record", copy_dir)
    assert item is not None and item["lead_department"]["en"] == "Healthcare Security Administration"
    assert item["materials"] == [] and item["includes"] == []


@pytest.mark.parametrize(("old", "new", "item_id", "field"), [
    ('source = "household.child.name"', 'source = "household.child.nmae"', "newborn", "form[6].source"),
    ('title = { zh-CN = "教育入学一件事", en = "School enrolment (one-stop)" }', 'title = { zh-CN = "教育入学一件事" }',
     "school-enrolment", "title.en"),
    ('lead_department = "education"', 'lead_department = "educaton"', "school-enrolment", "lead_department"),
    ('e_licence = "disability_certificate"', 'e_licence = "disability_card"', "disability-services", "e_licence"),
    ('time_limit_days = 20', 'time_limit_days = -1', "disability-services", "time_limit_days"),
])
def test_a_malformed_catalogue_names_file_item_and_field(tmp_path: Path, old: str, new: str, item_id: str, field: str) -> None:
    copy_dir = _copy_catalogue(tmp_path)
    path = copy_dir / "20-personal.toml"
    text = path.read_text(encoding="utf-8")
    assert old in text
    path.write_text(text.replace(old, new, 1), encoding="utf-8")
    with pytest.raises(cat.CatalogueError) as info:
        cat.load_catalogue(copy_dir)
    message = str(info.value)
    assert "20-personal.toml" in message and repr(item_id) in message and field in message, message


def test_a_promise_without_commitment_is_refused(tmp_path: Path) -> None:
    copy_dir = _copy_catalogue(tmp_path)
    path = copy_dir / "10-enterprise.toml"
    text = path.read_text(encoding="utf-8")
    start = text.index('{ id = "safety_rules"')
    end = text.index("\n", start)
    path.write_text(text[:start] + '{ id = "safety_rules", title = { zh-CN = "安全生产管理制度文本", en = "Safety rules" }, '
                    'promise_allowed = true, required = true },' + text[end:], encoding="utf-8")
    with pytest.raises(cat.CatalogueError, match=r"'transport-enterprise-start'.*materials\[5\].*commitment"):
        cat.load_catalogue(copy_dir)


def test_unknown_keys_and_bad_toml_are_refused(tmp_path: Path) -> None:
    copy_dir = _copy_catalogue(tmp_path)
    path = copy_dir / "30-kiosk.toml"
    text = path.read_text(encoding="utf-8")
    path.write_text(text.replace('kind = "lookup"', 'kind = "lookup"\ncolour = "red"', 1), encoding="utf-8")
    with pytest.raises(cat.CatalogueError, match=r"30-kiosk\.toml: item 'application-progress': field colour"):
        cat.load_catalogue(copy_dir)
    path.write_text(text + "\n[[item]\n", encoding="utf-8")
    with pytest.raises(cat.CatalogueError, match=r"30-kiosk\.toml: not valid TOML"):
        cat.load_catalogue(copy_dir)


# -- residents -----------------------------------------------------------------------------------
def test_every_emulator_card_holder_has_a_file(people: dict[str, res.Resident]) -> None:
    assert len(people) >= 8
    for path in sorted(CARDS_DIR.glob("*.toml")):
        card = _card_file(path.stem)
        person = res.find_resident(card["id_number"])
        assert person is not None, f"no resident file for card {path.stem}"
        assert person.name == card["name"] and person.emulator_card == path.stem
        assert person.birth_date == card["birth_date"] and person.gender_code == card["gender_code"]


def test_the_roster_covers_the_demo_cases(people: dict[str, res.Resident]) -> None:
    assert any(p.age_on(TODAY) >= 80 for p in people.values())
    assert any(p.disability_level for p in people.values())
    assert any(p.enterprises for p in people.values())
    assert any(any(m.relation == "child" and (TODAY - m.birth_date).days < 90 for m in p.household)
               for p in people.values())


def test_every_resident_id_number_passes_gb_11643(people: dict[str, res.Resident]) -> None:
    checked = 0
    for person in people.values():
        if person.id_type == "foreign_2017":  # 15-character card number, no published check
            assert len(person.id_number) == 15
            continue
        gender = person.gender_code if person.id_type in ("resident", "hmt_permit") else None
        validate_id_number(person.id_number, person.birth_date, gender)
        checked += 1
        for member in person.household:
            if member.id_number:
                validate_id_number(member.id_number, member.birth_date, member.gender_code)
    assert checked >= 8


def test_credit_codes_validate(people: dict[str, res.Resident]) -> None:
    codes = [e.credit_code for p in people.values() for e in p.enterprises]
    assert codes
    for code in codes:
        assert _gb32100(code), code
        assert res.credit_code_problem(code) is None
    good = codes[0]
    wrong_check = good[:17] + ("0" if good[17] != "0" else "1")
    assert res.credit_code_problem(wrong_check) is not None and not _gb32100(wrong_check)
    assert res.credit_code_problem(good[:8] + "I" + good[9:]) is not None  # I is not in the set
    business_licences = {lic.number for p in people.values() for lic in p.licences if lic.type == "business_licence"}
    assert business_licences == set(codes)


def test_a_bad_credit_code_fails_at_load(tmp_path: Path) -> None:
    text = res.RESIDENTS_FILE.read_text(encoding="utf-8").replace("91110101MA01KF7X23", "91110101MA01KF7X24")
    bad = tmp_path / "residents.toml"
    bad.write_text(text, encoding="utf-8")
    with pytest.raises(res.ResidentDataError, match=r"enterprises\[0\]\.credit_code.*GB 32100"):
        res.load_residents(bad)


def test_a_resident_repr_hides_name_and_id_number(people: dict[str, res.Resident]) -> None:
    person = res.find_resident("110101199003070011")
    assert person is not None
    shown = repr(person) + str(person) + repr([person]) + repr(person.household)
    assert "110101199003070011" not in shown and "张三" not in shown
    assert "0011" in repr(person)
    mother = res.find_resident("110101199506150021")
    assert mother is not None
    assert "110101199302140032" not in repr(mother.household) and "孙浩然" not in repr(mother.household)


def test_find_resident_normalises_and_misses() -> None:
    assert res.find_resident("81000019880808003x") is not None
    assert res.find_resident("110101199003070012") is None
    assert res.find_resident("") is None


def test_licences_are_listed_with_titles(people: dict[str, res.Resident]) -> None:
    owner = res.find_resident("110101198511200033")
    listed = res.licences(owner)
    assert {"type", "title", "number", "issuer", "valid_to"} == set(listed[0])
    by_type = {lic["type"]: lic for lic in listed}
    assert by_type["business_licence"]["title"] == {"zh-CN": "电子营业执照", "en": "Electronic business licence"}
    assert by_type["household_register"]["valid_to"] == "长期"
    assert by_type["id_card"]["valid_to"] == "2035-03-10"
    assert res.licences(None) == []


# -- prefill -------------------------------------------------------------------------------------
def test_prefill_for_the_emulator_card_resident_fills_name_and_id_number() -> None:
    card = _identify_dict(_card_file("resident"))
    person = res.find_resident(card["id_number"])
    item = cat.get_item("social-insurance-record")
    assert person is not None and item is not None
    filled = res.prefill(item, person, card)
    assert filled["name"] == {"value": "张三", "source": "identity.name"}
    assert filled["id_number"] == {"value": "110101199003070011", "source": "identity.id_number"}
    assert filled["social_security_number"]["source"] == "profile.social_security_number"
    assert "record_type" not in filled  # typed by the citizen


def test_prefill_fills_a_bundle_from_the_file() -> None:
    card = _identify_dict(_card_file("resident-rare-name"))
    mother = res.find_resident(card["id_number"])
    filled = res.prefill(cat.get_item("newborn"), mother, card)
    assert filled["applicant_name"]["value"] == "王䶮𠈌"
    assert filled["spouse_name"]["value"] == "孙浩然"
    assert filled["baby_birth_date"] == {"value": "2026-11-10", "source": "household.child.birth_date"}
    assert filled["birth_certificate_number"]["source"] == "licence.birth_certificate.number"
    assert filled["marital_status"]["value"] == "20"
    assert "applicant_relation" not in filled

    owner_card = _identify_dict(_card_file("resident-long-address"))
    owner = res.find_resident(owner_card["id_number"])
    filled = res.prefill(cat.get_item("enterprise-info-change"), owner, owner_card)
    assert filled["credit_code"] == {"value": "91110101MA01KF7X23", "source": "enterprise.credit_code"}
    assert filled["enterprise_name"]["value"] == "北京示例餐饮管理有限公司"


def test_prefill_handles_card_variants_and_strangers() -> None:
    item = cat.get_item("retirement")
    card = _card_file("resident-long-term")  # raw card file: date objects, appended address
    person = res.find_resident(card["id_number"])
    filled = res.prefill(item, person, card)
    assert filled["birth_date"]["value"] == "1960-04-12"
    assert filled["gender"]["value"] == "1"
    assert res.prefill(cat.get_item("real-estate-record"), person, card)["address"]["value"] == card["appended_address"]
    # no file: only the card's own data
    stranger = dict(_identify_dict(_card_file("resident")), id_number="110101200001010010")
    filled = res.prefill(item, None, stranger)
    assert set(v["source"].split(".")[0] for v in filled.values()) == {"identity"}
    # someone else's file is never used
    other = res.find_resident("110101196608200057")
    filled = res.prefill(item, other, _identify_dict(_card_file("resident")))
    assert "employer" not in filled and filled["name"]["value"] == "张三"
    assert res.prefill(item, None, {}) == {}


# -- policies ------------------------------------------------------------------------------------
def _benefits(id_number: str, today: dt.date = TODAY) -> dict[str, dict[str, Any]]:
    return {b["id"]: b for b in pol.match_benefits(res.find_resident(id_number), today)}


def test_the_elderly_get_the_old_age_allowance_automatically() -> None:
    got = _benefits("110101194005200040")
    assert set(got) == {"elderly-allowance"}
    b = got["elderly-allowance"]
    assert b["status"] == "granted_automatically"
    assert "年满80周岁" in b["reason"]["zh-CN"] and "86" in b["reason"]["zh-CN"] and "80" in b["reason"]["en"]
    assert b["title"] == {"zh-CN": "高龄津贴", "en": "Old-age allowance (80+)"}


def test_severe_disability_gets_both_allowances() -> None:
    got = _benefits("110101198207080030")
    assert set(got) == {"severe-disability-care-allowance", "hardship-disability-living-allowance"}
    assert all(b["status"] == "granted_automatically" for b in got.values())
    assert "2级" in got["severe-disability-care-allowance"]["reason"]["zh-CN"]
    assert "minimum living allowance" in got["hardship-disability-living-allowance"]["reason"]["en"]


def test_the_person_near_retirement_is_told_and_why() -> None:
    got = _benefits("110101196608200057")
    assert set(got) == {"retirement", "only-child-parents-reward"}
    b = got["retirement"]
    assert b["status"] == "eligible" and b["item_id"] == "retirement"
    assert "2027-01-20" in b["reason"]["zh-CN"] and "60周岁5个月" in b["reason"]["zh-CN"]
    assert "38" in b["reason"]["en"] and "15" in b["reason"]["en"]
    # a year earlier he is not near retirement yet
    assert "retirement" not in _benefits("110101196608200057", dt.date(2025, 12, 1))


def test_newborn_parents_and_the_rural_pensioner() -> None:
    for parent in ("110101199506150021", "110101199302140032"):
        got = _benefits(parent)
        assert got["newborn-medical-insurance"]["status"] == "granted_automatically"
        assert "21天" in got["newborn-medical-insurance"]["reason"]["zh-CN"]
        assert got["childcare-subsidy"]["status"] == "eligible"
    assert "newborn-medical-insurance" not in _benefits("110101199506150021", dt.date(2027, 3, 1))
    got = _benefits("110118196609030026")
    assert set(got) == {"resident-pension"}
    assert "年满60周岁" in got["resident-pension"]["reason"]["zh-CN"]
    assert _benefits("110118196609030026", dt.date(2026, 9, 2)) == {}  # the day before her 60th birthday


def test_young_people_get_nothing() -> None:
    for id_number in ("110101199003070011", "110101198511200033", "911643199202290026", "81000019880808003X"):
        assert pol.match_benefits(res.find_resident(id_number), TODAY) == [], id_number
    assert pol.match_benefits(None, TODAY) == []


@pytest.mark.parametrize(("birth", "schedule", "age_months"), [
    (dt.date(1964, 12, 15), "male", 720),            # before the reform: 60
    (dt.date(1965, 1, 10), "male", 721),             # 60 years 1 month
    (dt.date(1965, 5, 10), "male", 722),
    (dt.date(1976, 9, 1), "male", 756),              # 63
    (dt.date(1990, 1, 1), "male", 756),
    (dt.date(1970, 1, 1), "female_cadre", 661),      # 55 years 1 month
    (dt.date(1981, 9, 1), "female_cadre", 696),      # 58
    (dt.date(1975, 1, 1), "female_worker", 601),     # 50 years 1 month
    (dt.date(1975, 3, 1), "female_worker", 602),
    (dt.date(1984, 11, 1), "female_worker", 660),    # 55
])
def test_statutory_retirement_age(birth: dt.date, schedule: str, age_months: int) -> None:
    months, _ = pol.statutory_retirement(birth, schedule, pol.load_policies().retirement)
    assert months == age_months


def test_minimum_contribution_years_rise_from_2030() -> None:
    rules = pol.load_policies().retirement
    assert [pol.minimum_contribution_years(y, rules) for y in (2029, 2030, 2031, 2039, 2045)] == [15, 15.5, 16, 20, 20]


def test_the_evaluator_is_strict() -> None:
    facts = {"age": 81, "retired": True, "disability_level": None, "licences": ["id_card"], "contribution_years": 20,
             "min_contribution_years": 15}
    c = pol.Policy.model_validate({
        "id": "x", "title": {"zh-CN": "x", "en": "x"}, "status": "eligible", "reason": {"zh-CN": "{age}", "en": "{age}"},
        "when": {"all": [{"fact": "age", "op": ">=", "value": 80},
                         {"not": {"fact": "disability_level", "op": "in", "value": [1, 2]}},
                         {"any": [{"fact": "licences", "op": "contains", "value": "id_card"},
                                  {"fact": "retired", "op": "==", "value": False}]},
                         {"fact": "contribution_years", "op": ">=", "value_fact": "min_contribution_years"}]},
    }).when
    assert pol.evaluate(c, facts)
    assert not pol.evaluate(pol.Compare(fact="disability_level", op=">=", value=1), facts)  # unknown is never true
    assert not pol.evaluate(pol.Compare(fact="retired", op="==", value=1), facts)  # no bool/int mixing
    assert not pol.evaluate(pol.Compare(fact="age", op="==", value="81"), facts)


def test_malformed_policies_are_refused(tmp_path: Path) -> None:
    text = pol.POLICIES_FILE.read_text(encoding="utf-8")
    for old, new, pattern in [
        ('  { fact = "age", op = ">=", value = 80 },', '  { fact = "agee", op = ">=", value = 80 },', r"'elderly-allowance'.*unknown fact 'agee'"),
        ('  { fact = "age", op = ">=", value = 80 },', '  { fact = "age", op = "=>", value = 80 },', r"'elderly-allowance'.*\.op: "),
        ("（现年{age}周岁），户籍", "（现年{__class__}周岁），户籍", r"'elderly-allowance'.*field reason"),
        ('item_id = "newborn"', 'item_id = "newborn-x"', r"'newborn-medical-insurance'.*field item_id"),
    ]:
        assert old in text
        path = tmp_path / "policies.toml"
        path.write_text(text.replace(old, new, 1), encoding="utf-8")
        pol.reload_policies()
        with pytest.raises(pol.PolicyError, match=pattern):
            pol.load_policies(path)
    pol.reload_policies()
