"""The screen mirror the help desk sees: texts exactly as the kiosk shows them, and nothing
personal without the citizen's consent (fail-closed), whatever the view holds."""
from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from config.texts import Texts
from kiosk import privacy
from kiosk.screen_mirror import MASK, mirror
from kiosk.view import (
    Application,
    Benefit,
    FieldView,
    Handout,
    HelpCall,
    Home,
    ItemInfo,
    MaterialView,
    Step,
    View,
)

TEXTS = Texts.load()
ID_NUMBER = "110101199003071220"
NAME = "王芳"
PHONE = "13800138000"


def field(key: str, label: str, value: str, *, source: str = "card") -> FieldView:
    return FieldView(key, label, value, value, "text", True, source != "card", source)


def form_view(name: str = NAME, id_number: str = ID_NUMBER, phone: str = PHONE, **extra: Any) -> View:
    item = ItemInfo("newborn", "新生儿出生一件事")
    values: dict[str, Any] = {
        "title_values": {"item": item.title}, "message_key": "form.missing", "message_values": {"field": "联系电话"},
        "fields": (field("applicant_name", "申请人姓名", name), field("applicant_id_number", "申请人身份证件号码", id_number),
                   field("contact_phone", "联系电话", phone, source="platform"), field("note", "备注", "")),
        "item": item, "position": (2, 4),
        "materials": (MaterialView("birth_cert", "出生医学证明", True, "e_licence", "出生医学证明"),),
        "help": HelpCall("connected", call_id="c1", staff="李娜", consent="asked", messages=("请核对",),
                         pointer=(0.5, 0.25, 3))}
    values.update(extra)
    step, language = values.pop("step", Step.FORM), values.pop("language", "zh-CN")
    title_key, prompt_key = values.pop("title_key", "form.title"), values.pop("prompt_key", "form.prompt")
    return View(step, language, title_key, prompt_key, **values)


def test_the_form_is_masked_without_consent_and_shown_with_it() -> None:
    view = form_view()
    hidden = mirror(view, TEXTS, consent=False, layout=None)
    assert hidden["masked"] is True and hidden["step"] == "form" and hidden["position"] == [2, 4]
    assert hidden["title"] == {"text": "填写信息：新生儿出生一件事", "masked": False}  # catalogue words stay
    assert hidden["message"]["text"] == TEXTS.get("form.missing", "zh-CN", field="联系电话")
    assert hidden["position_text"] == "第 2 步，共 4 步"
    fields = {f["key"]: f for f in hidden["fields"]}
    assert fields["applicant_name"]["value"] == MASK and fields["applicant_name"]["masked"] is True
    assert fields["note"] == {**fields["note"], "value": "", "masked": False}  # empty stays empty
    assert fields["contact_phone"]["label"] == "联系电话" and fields["contact_phone"]["source"] == "platform"
    assert hidden["materials"][0]["provided"] == "e_licence"
    assert hidden["help"]["staff"] == "李娜" and hidden["pointer"] == [0.5, 0.25, 3]
    text = json.dumps(hidden, ensure_ascii=False)
    assert NAME not in text and ID_NUMBER not in text and PHONE not in text

    shown = mirror(view, TEXTS, consent=True, layout=None)
    assert shown["masked"] is False
    assert {f["key"]: f["value"] for f in shown["fields"]}["applicant_id_number"] == ID_NUMBER
    assert not any(f["masked"] for f in shown["fields"])


def test_the_name_in_a_title_and_receipt_numbers_are_masked() -> None:
    home = Home("ready", (Benefit("高龄津贴", f"{NAME}年满80周岁", "granted_automatically"),),
                (Application("SQ20261101000007", "新生儿出生一件事", "in_progress", "2026-11-01"),))
    view = View(Step.HOME, "zh-CN", "home.title", "home.prompt", {"name": NAME}, home=home)
    hidden = mirror(view, TEXTS, consent=False, layout=None)
    assert hidden["title"] == {"text": TEXTS.get("home.title", "zh-CN", name=MASK), "masked": True}
    assert hidden["home"]["benefits"][0]["reason"] == f"{MASK}年满80周岁"  # the name scrubbed wherever it is
    app = hidden["home"]["applications"][0]
    assert app["receipt_number"] == MASK and app["masked"] is True and app["title"] == "新生儿出生一件事"
    shown = mirror(view, TEXTS, consent=True, layout=None)
    assert shown["title"]["text"] == TEXTS.get("home.title", "zh-CN", name=NAME)
    assert shown["home"]["applications"][0]["receipt_number"] == "SQ20261101000007"


def test_finish_receipt_handout_and_warning() -> None:
    view = View(Step.FINISH, "en", "finish.title", "finish.prompt", receipt="SQ20261127000001",
                handout=Handout("handout.paper_out", {"receipt": "SQ20261127000001"}), warning_seconds=9)
    hidden = mirror(view, TEXTS, consent=False, layout=None)
    assert hidden["receipt"] == {"text": TEXTS.get("finish.receipt", "en", receipt=MASK), "masked": True}
    assert "SQ20261127000001" not in json.dumps(hidden) and hidden["handout"]["masked"] is True
    assert hidden["warning"]["text"] == TEXTS.get("idle.warning", "en", seconds=9) and hidden["warning_seconds"] == 9
    assert mirror(view, TEXTS, consent=True, layout=None)["receipt"]["text"].endswith("SQ20261127000001")


def test_numbers_in_any_text_are_masked_and_registered_secrets_too() -> None:
    privacy.register_secret("欧阳娜娜")
    view = form_view(help=HelpCall("connected", call_id="c1", staff="李娜",
                                   messages=(f"请确认号码 {ID_NUMBER} 和 {PHONE}", "欧阳娜娜您好")))
    messages = mirror(view, TEXTS, consent=False, layout=None)["help"]["messages"]
    assert ID_NUMBER not in messages[0] and PHONE not in messages[0] and "欧阳娜娜" not in messages[1]


def test_choose_services_query_and_layout() -> None:
    view = View(Step.CHOOSE, "zh-CN", "choose.title", "choose.prompt", {"name": NAME},
                services=(("newborn", "新生儿出生一件事"),), query="王芳的事")
    layout = {"next": [0.8, 0.9, 0.15, 0.08], "bad": [1, 2], "nan": [float("nan"), 0, 0, 0], "text": "x"}
    hidden = mirror(view, TEXTS, consent=False, layout=layout)
    assert hidden["services"] == [{"id": "newborn", "title": "新生儿出生一件事"}]
    assert hidden["query"] == {"text": MASK, "masked": True}
    assert hidden["layout"] == {"next": [0.8, 0.9, 0.15, 0.08]}  # only well-formed boxes
    assert hidden["labels"] is None  # boxes given without words
    labelled = mirror(view, TEXTS, consent=False, layout={"next": {"box": [0.8, 0.9, 0.15, 0.08], "label": "下一步"}})
    assert labelled["layout"] == {"next": [0.8, 0.9, 0.15, 0.08]} and labelled["labels"] == {"next": "下一步"}
    assert mirror(view, TEXTS, consent=True, layout=None)["query"]["text"] == "王芳的事"


def test_the_face_step_never_carries_a_picture() -> None:
    view = View(Step.FACE, "zh-CN", "face.title", "face.prompt", message_key="face.hint.closer")
    out = mirror(view, TEXTS, consent=True, layout=None)
    assert out["step"] == "face" and out["message"]["text"] == TEXTS.get("face.hint.closer", "zh-CN")
    flat = json.dumps(out)
    assert "image" not in flat and "jpeg" not in flat.lower() and len(flat) < 4000


# -- property: no synthetic personal value in a view's fields leaks into a masked mirror ------------
def _check_char(digits: str) -> str:
    weights = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)
    return "10X98765432"[sum(int(d) * w for d, w in zip(digits, weights)) % 11]


def _id_number(region: int, year: int, month: int, day: int, seq: int) -> str:
    body = f"{region:06d}{year:04d}{month:02d}{day:02d}{seq:03d}"
    return body + _check_char(body)


id_numbers = st.builds(_id_number, st.integers(110000, 659999), st.integers(1920, 2025), st.integers(1, 12),
                       st.integers(1, 28), st.integers(0, 999))
names = st.text(st.characters(min_codepoint=0x4E00, max_codepoint=0x9FA5), min_size=2, max_size=4)
phones = st.from_regex(r"1[3-9][0-9]{9}", fullmatch=True)
languages = st.sampled_from(["zh-CN", "en"])
steps = st.sampled_from([Step.FORM, Step.REVIEW, Step.HOME, Step.CHOOSE, Step.FINISH])


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(id_numbers, names, phones, languages, steps, st.text(max_size=12))
def test_no_synthetic_personal_value_leaks_into_a_masked_mirror(id_number: str, name: str, phone: str,
                                                                 language: str, step: Step, noise: str) -> None:
    home = Home("ready", (Benefit("高龄津贴", f"{name}，符合条件 {noise}", "eligible"),),
                (Application(id_number, f"申请 {phone}", "accepted", "2026-11-01"),))
    view = form_view(
        name, id_number, phone, step=step, language=language, title_key="home.title",
        title_values={"name": name, "item": "新生儿出生一件事"},
        message_key="handout.sms_sent", message_values={"sent_to": phone, "who": f"{name} {id_number}"},
        home=home, receipt=id_number, query=f"{name}{noise}",
        handout=Handout("handout.paper_out", {"receipt": id_number}),
        fields=(field("applicant_name", "申请人姓名", name), field("applicant_id_number", "证件号码", id_number),
                field("contact_phone", "联系电话", phone, source="platform"),
                field("address", "住址", f"{noise}{name}路{phone[-4:]}号"),
                FieldView("relation", "关系", f"{name}之子", "child", "choice", True, True, "")),
        help=HelpCall("connected", call_id="c1", staff="李娜", consent="refused",
                      messages=(f"您是{name}吗", f"号码 {id_number}", f"电话{phone}")))
    # the Kivy app's buttons with their words (a form row shows its value)
    layout = {"field:contact_phone": {"box": [0.1, 0.4, 0.8, 0.06], "label": f"联系电话 {phone}"},
              "field:applicant_name": {"box": [0.1, 0.3, 0.8, 0.06], "label": f"申请人姓名 {name}"},
              "next": {"box": [0.8, 0.9, 0.15, 0.08], "label": "下一步"}}
    out = json.dumps(mirror(view, TEXTS, consent=False, layout=layout), ensure_ascii=False)
    assert name not in out
    assert id_number not in out and id_number[6:14] not in out  # not even the date of birth
    assert phone not in out
    fields = json.loads(out)["fields"]
    assert all(f["value"] in ("", MASK) and f["masked"] == (f["value"] == MASK) for f in fields)
    assert json.loads(out)["labels"]["next"] == "下一步" and "field:contact_phone" in json.loads(out)["layout"]


@pytest.mark.parametrize("language", ["zh-CN", "en"])
def test_texts_render_as_the_screen_shows_them(language: str) -> None:
    view = View(Step.REVIEW, language, "review.title", "review.prompt", {"item": "新生儿出生一件事"}, position=(4, 4))
    out = mirror(view, TEXTS, consent=False, layout=None)
    assert out["title"]["text"] == TEXTS.get("review.title", language, item="新生儿出生一件事")
    assert out["prompt"]["text"] == TEXTS.get("review.prompt", language)
    assert out["position_text"] == TEXTS.get("header.position", language, n=4, m=4)
