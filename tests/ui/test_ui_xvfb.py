"""The touchscreen under a real X server (Xvfb + Mesa GL): pixels, real clicks, idle, Esc.

Each test runs the app in its own process (tests/ui/drive_app.py) and follows
its JSON lines; clicks and keys go through xdotool like a user's would. Screenshots
land in artifacts/screenshots/<test name>/ for a person to look at.
"""
from __future__ import annotations

import importlib.util
import math
import time
from pathlib import Path

import pytest

PIL = pytest.importorskip("PIL", reason="Pillow is needed for the pixel checks (pip install pillow)")
from PIL import Image, ImageDraw, ImageFilter, ImageFont, ImageOps  # noqa: E402
from journey_data import APPLICATIONS, BENEFITS, LICENCES, NEWBORN_ANSWERS


SHOTS = Path(__file__).resolve().parents[2] / "artifacts" / "screenshots"  # as in conftest.py
_KIVY_DIR = Path(importlib.util.find_spec("kivy").submodule_search_locations[0])  # type: ignore[index, union-attr]
ROBOTO = _KIVY_DIR / "data" / "fonts" / "Roboto-Regular.ttf"  # Kivy's default font: no hanzi
PROFILE = (320, 48)  # title ink is compared at this size


# -- pixel helpers ----------------------------------------------------------------------------
def ink(img: Image.Image) -> Image.Image:
    """Grey levels with ink bright, background black, cropped to the ink."""
    grey = ImageOps.invert(img.convert("L"))
    box = grey.point(lambda v: 255 if v > 64 else 0).getbbox()
    assert box is not None, "no ink at all where the text should be"
    return grey.crop(box)


def profile(img: Image.Image) -> list[float]:
    small = ink(img).resize(PROFILE, Image.Resampling.BILINEAR).filter(ImageFilter.GaussianBlur(2))
    return [float(v) for v in small.tobytes()]


def correlation(a: list[float], b: list[float]) -> float:
    mean_a, mean_b = sum(a) / len(a), sum(b) / len(b)
    cov = sum((x - mean_a) * (y - mean_b) for x, y in zip(a, b))
    var_a = sum((x - mean_a) ** 2 for x in a)
    var_b = sum((y - mean_b) ** 2 for y in b)
    return cov / math.sqrt(var_a * var_b) if var_a and var_b else 0.0


def render(text: str, font_path: Path | str, size: float) -> Image.Image:
    """`text` as PIL draws it with `font_path` (the first face of a .ttc, as Kivy loads it)."""
    font = ImageFont.truetype(str(font_path), size=round(size), index=0)
    left, top, right, bottom = font.getbbox(text)
    img = Image.new("L", (right - left + 40, bottom - top + 40), 255)
    ImageDraw.Draw(img).text((20 - left, 20 - top), text, font=font, fill=0)
    return img


# -- tests ----------------------------------------------------------------------------------
def test_attract_title_is_drawn_with_chinese_glyphs(kiosk_app, request):
    """Pixels of the title match the Chinese font's glyphs, not Roboto's empty boxes."""
    app = kiosk_app()
    shot = app.wait_shot("attract")
    title = app.ready["regions"]["attract_title"]
    assert title["text"] == "高效办成一件事"
    x, y, w, h = title["box"]
    crop = Image.open(shot).convert("RGB").crop((x, y, x + w, y + h))
    chinese = render(title["text"], app.ready["font_path"], title["font_size"])
    tofu = render(title["text"], ROBOTO, title["font_size"])
    out = SHOTS / request.node.name
    crop.save(out / "title_on_screen.png")
    chinese.save(out / "title_reference_chinese_font.png")
    tofu.save(out / "title_reference_roboto.png")

    seen = profile(crop)
    like_chinese = correlation(seen, profile(chinese))
    like_tofu = correlation(seen, profile(tofu))
    print(f"title ink correlation: Chinese font {like_chinese:.3f}, Roboto boxes {like_tofu:.3f}")
    assert like_chinese > 0.8, f"title does not look like the Chinese font ({like_chinese:.3f})"
    assert like_chinese - like_tofu > 0.2, (
        f"title looks as much like Roboto's boxes ({like_tofu:.3f}) as like hanzi ({like_chinese:.3f})")


def test_click_on_start_begins_a_visit(kiosk_app):
    app = kiosk_app()
    app.click_target(app.ready, "start")
    view = app.wait_view(step="identify", reason="start")
    assert view["screen"] == "identify"
    assert "cancel" in view["targets"] and "language" in view["targets"]


def test_repeat_and_mute_are_on_every_screen(kiosk_app):
    app = kiosk_app()
    assert {"repeat", "toggle_voice", "language"} <= set(app.ready["targets"])
    app.click_target(app.ready, "start")
    view = app.wait_view(step="identify", reason="start")
    app.click_target(view, "repeat")
    view = app.wait_view(step="identify", reason="repeat")
    app.click_target(view, "toggle_voice")
    view = app.wait_view(step="identify", reason="voice", voice_on=False)
    app.send(do="shot", name="identify-muted")
    app.wait_shot("identify-muted")
    app.click_target(view, "cancel")
    view = app.wait_view(step="attract", reason="cancel")
    assert view["voice_on"] is True  # the next citizen hears the prompts again


def test_idle_warning_then_back_to_attract(kiosk_app):
    app = kiosk_app()
    app.click_target(app.ready, "start")
    app.wait_view(step="identify", reason="start")
    started = time.monotonic()
    warning = app.wait_view(step="identify", reason="warning", timeout=10)
    assert warning["overlay"] is True and warning["warning"] in (1, 2)
    assert "keep_alive" in warning["targets"]
    assert app.wait_shot("warning").exists()
    back = app.wait_view(step="attract", reason="timeout", timeout=10)
    assert back["screen"] == "attract" and back["overlay"] is False
    print(f"wiped {time.monotonic() - started:.1f} s after the visit started (3 s + 2 s configured)")


def test_continue_on_the_idle_warning_keeps_the_visit(kiosk_app):
    app = kiosk_app()
    app.click_target(app.ready, "start")
    app.wait_view(step="identify", reason="start")
    warning = app.wait_view(step="identify", reason="warning", timeout=10)
    app.click_target(warning, "keep_alive")
    kept = app.wait_view(reason="continue", timeout=5)
    assert kept["step"] == "identify" and kept["screen"] == "identify" and kept["overlay"] is False


def test_escape_does_not_quit(kiosk_app):
    app = kiosk_app()
    app.key("Escape")
    app.wait_for(lambda e: e.get("event") == "key" and e.get("key") == 27, "Esc to reach the app", 5)
    time.sleep(1.0)  # with exit_on_escape the app would be gone by now
    assert app.alive, "Esc closed the kiosk"
    assert app.window_visible(), "the kiosk window is gone"
    app.send(do="targets")
    view = app.wait_view(reason="targets", timeout=5)
    assert view["screen"] == "attract" and "start" in view["targets"]


# -- the whole journey ---------------------------------------------------------------------------
HEADER = {"repeat", "toggle_voice", "toggle_elder", "help", "language"}  # on every screen
SEARCH = {"zh-CN": ("社保卡", "social-security-card"), "en": ("birth", "newborn")}  # a word, an item it finds


class Walk:
    """One visit through every screen, touched with real clicks; a screenshot of each."""

    def __init__(self, app, language: str) -> None:
        self.app, self.language, self.shots = app, language, 0

    def shot(self, name: str) -> Path:
        self.shots += 1
        full = f"{self.language}-{self.shots:02d}-{name}"
        self.app.send(do="shot", name=full)
        return self.app.wait_shot(full)

    def screen(self, view: dict) -> dict:
        """A step's screen: in the right language, with the header's buttons."""
        assert view["language"] == self.language, view["language"]
        if not (view["overlay"] or view["editor"] or view["picker"] or view["help"]):
            assert HEADER <= set(view["targets"]), f"header buttons missing on {view['screen']}: {sorted(view['targets'])}"
        return view

    def touch(self, view: dict, action: str, **expected) -> dict:
        """Click `action` (scrolling to it first when a list hides it); the view that follows."""
        view = self.app.reveal(view, action)
        self.app.click_target(view, action)
        return self.screen(self.app.wait_view(**expected)) if expected else self.app.look()


def walk_visit(app, language: str) -> None:
    w = Walk(app, language)
    view = app.look()
    assert view["screen"] == "attract"
    if language != view["language"]:
        app.click_target(view, "language")
        view = app.wait_view(step="attract", reason="language", language=language)
    w.screen(view)
    w.shot("attract")

    view = w.touch(view, "start", step="identify", reason="start", screen="identify")
    assert "cancel" in view["targets"]
    w.shot("identify")
    app.send(do="card_failed")
    view = w.screen(app.wait_view(step="identify", reason="card_failed", message="identify.read_failed"))
    w.shot("identify-card-unreadable")

    # the citizen's page: asked of the platform, then its answer
    app.send(do="card", name="张三", id_number="110101199003071234", address="北京市东城区景山前街4号")
    view = w.screen(app.wait_view(step="home", reason="card", screen="home"))
    assert view["home"]["state"] == "loading"
    w.shot("home-loading")
    app.send(do="licences", licences=LICENCES)
    app.send(do="home", benefits=BENEFITS, applications=APPLICATIONS)
    view = w.screen(app.wait_view(step="home", reason="home"))
    assert view["home"]["state"] == "ready" and len(view["home"]["benefits"]) == 2
    assert view["home"]["applications"] == ["SQ20261101000007"]
    assert "choose:elderly-allowance" in view["targets"]  # an eligible benefit is applied for from here
    w.shot("home")

    # choose: a life-event filter, then a search typed on the keyboard
    view = w.touch(view, "browse", step="choose", reason="browse", screen="choose")
    assert "newborn" in view["services"] and len(view["services"]) > 10
    w.shot("choose")
    view = w.touch(view, "filter:life_event:出生", step="choose", reason="filter")
    assert view["services"] == ["newborn"] and view["filter"] == ["life_event", "出生"]
    w.shot("choose-filter")
    view = w.touch(view, "filter:all:", step="choose", reason="filter")
    view = w.touch(view, "search")
    assert view["editor"] and view["editor_state"]["mode"] in ("pinyin", "letters")
    w.shot("choose-search-keyboard")
    word, found = SEARCH[language]
    app.send(do="type", text=word)
    view = w.screen(app.wait_view(step="choose", reason="search"))
    assert view["query"] == word and found in view["services"] and not view["editor"]
    w.shot("choose-search-result")
    view = w.touch(view, "clear_search", step="choose", reason="search")
    assert view["query"] == "" and len(view["services"]) > 10
    view = w.touch(view, "filter:life_event:出生", step="choose", reason="filter")

    # notice: read to its end
    view = w.touch(view, "choose:newborn", step="notice", reason="choose", screen="notice")
    assert view["position"] == [1, 4] and view["item"] == "newborn"
    w.shot("notice")
    app.drag(640, 500, 0, -900)
    time.sleep(1.0)
    w.shot("notice-end")

    # the form: what is missing, the keyboard, a refused value, the choice list, help
    view = w.touch(app.look(), "next", step="form", reason="next", screen="form")
    fields = {f["key"]: f for f in view["fields"]}
    assert fields["applicant_name"]["value"] == "张三" and not fields["applicant_name"]["editable"]
    w.shot("form")
    view = w.touch(view, "next", step="form", reason="missing")
    assert view["message"] == "form.missing"
    w.shot("form-missing")
    view = w.touch(view, "edit:contact_phone")
    assert view["editor"] and view["editor_state"]["mode"] == "digits"
    for digit in "12345":  # a phone number too short, typed key by key
        app.click_target(view, f"key:{digit}")
    view = app.look()
    assert view["editor_state"]["value"] == "12345", view["editor_state"]
    w.shot("form-keyboard")
    app.click_target(view, "key:enter")
    view = w.screen(app.wait_view(step="form", reason="invalid"))
    assert view["editor"] and view["editor_state"]["error"], "a refused value must say why, keyboard still open"
    assert {f["key"]: f["problem"] for f in view["fields"]}["contact_phone"] == "form.problem.phone"
    w.shot("form-refused")
    app.send(do="type", text="13800138000")
    view = w.screen(app.wait_view(step="form", reason="correct"))
    assert {f["key"]: f["raw"] for f in view["fields"]}["contact_phone"] == "13800138000" and not view["editor"]
    view = w.touch(app.look(), "edit:applicant_relation")
    assert view["picker"] and {"pick:father", "pick:mother"} <= set(view["targets"])
    w.shot("form-choices")
    view = w.touch(view, "pick:mother", step="form", reason="correct")
    assert {f["key"]: f["value"] for f in view["fields"]}["applicant_relation"] == ("母亲" if language == "zh-CN" else "Mother")
    for key, value in NEWBORN_ANSWERS.items():
        app.send(do="act", action="correct", args=[key, value])
        app.wait_view(step="form", reason="correct")
    view = w.touch(app.look(), "help", reason="help_failed")  # no help desk here: the hotline
    assert view["help"] == "failed" and set(view["targets"]) == {"close_help"}
    w.shot("help-hotline")
    app.send(do="help_answered", ticket="ZX20261127000001", hotline="12345")
    view = app.wait_view(reason="help_answered", help="called")
    w.shot("help-called")
    view = w.touch(view, "close_help", step="form", reason="help_closed")
    assert view["help"] is None
    w.shot("form-filled")

    # materials: e-licences found, one promised, one scanned
    view = w.touch(view, "next", step="materials", reason="next", screen="materials")
    assert view["materials"] == {"birth_certificate": "e_licence", "parents_id": "e_licence",
                                 "household_register": "e_licence", "marriage_certificate": "",
                                 "baby_photo": ""}
    w.shot("materials")
    view = w.touch(view, "promise:marriage_certificate", step="materials", reason="promised")
    assert view["materials"]["marriage_certificate"] == "promise"
    w.shot("materials-promised")
    app.send(do="scan_attached", material="baby_photo")
    view = w.screen(app.wait_view(step="materials", reason="scan_attached"))
    assert view["materials"]["baby_photo"] == "scan"
    app.drag(640, 500, 0, -900)
    time.sleep(1.0)
    w.shot("materials-scanned")

    # review, the receipt, help, the rating
    view = w.touch(app.look(), "next", step="review", reason="next", screen="review")
    assert len(view["fields"]) == 12 and view["position"] == [4, 4]
    w.shot("review")
    app.drag(640, 500, 0, -1500)
    time.sleep(1.0)
    w.shot("review-end")
    app.send(do="submitter", receipt="SQ20261127000042")
    view = w.touch(app.look(), "confirm", step="finish", reason="submitted", screen="finish")
    assert "cancel" not in view["targets"]  # nothing left to cancel: see screens/finish.py
    assert view["receipt"] == "SQ20261127000042"
    w.shot("finish")
    view = w.touch(view, "finish", step="rating", reason="finished", screen="rating")
    assert {f"rate:{n}" for n in range(1, 6)} <= set(view["targets"])
    w.shot("rating")
    app.click_target(view, "rate:5")
    view = app.wait_view(step="attract", reason="rated", screen="attract")
    assert view["message"] == "card.take_back"  # the card is still on the reader
    assert view["language"] == "zh-CN"  # the next citizen starts in Chinese
    w.shot("attract-take-card")
    app.send(do="card_removed")


def test_walk_through_every_screen(kiosk_app):
    """Every screen of the journey, by clicks and device events, in Chinese and in English: the
    attract and identify screens, the citizen's page (loading, then benefits and applications),
    choose (a filter, a search typed on the keyboard), the notice, the form (what is missing, the
    keyboard, a refused value with its reason, the choice list, help), the materials (e-licences,
    a promise, a scan), review, finish, rating; then a visit the platform does not take, the
    idle warning in both languages, and no personal data left in any widget afterwards.
    Screenshots in artifacts/screenshots/test_walk_through_every_screen/<language>-<n>-<what>.png."""
    app = kiosk_app(KIOSK__VISIT__IDLE_TIMEOUT_S="600", KIOSK__VISIT__IDENTIFY_TIMEOUT_S="600")
    app.wait_shot("attract")
    app.send(do="platform_catalogue")  # the platform's items: notice, form, materials
    app.send(do="home_pending")  # the citizen's page answers when the test says so
    for language in ("zh-CN", "en"):
        walk_visit(app, language)

    # a visit no platform takes: the finish screen says so, no rating, back to attract
    app.send(do="submitter", receipt=None)
    view = app.look()
    app.click_target(view, "start")
    app.wait_view(step="identify", reason="start")
    app.send(do="card", name="李四", id_number="110101194501011238", address="北京市西城区")
    app.send(do="home", benefits=[], applications=[])
    view = app.wait_view(step="home", reason="home")
    app.click_target(view, "browse")
    view = app.wait_view(step="choose", reason="browse")
    app.send(do="act", action="choose", args=["housing-fund-record"])
    app.wait_view(step="notice", reason="choose")
    app.send(do="act", action="next")
    view = app.wait_view(step="form", reason="next")
    for f in view["fields"]:  # what the card does not give: the kind of record
        if f["editable"] and f["required"] and not f["raw"]:
            app.send(do="act", action="correct", args=[f["key"], f["choices"][0] if f["choices"] else "1"])
            app.wait_view(step="form", reason="correct")
    app.send(do="act", action="next")
    app.wait_view(step="materials", reason="next")  # the ID card just read is the only material
    app.send(do="act", action="next")
    view = app.wait_view(step="review", reason="next")
    app.click_target(view, "confirm")
    view = app.wait_view(step="finish", reason="not_submitted", screen="finish")
    assert view["message"] == "finish.not_submitted" and view["receipt"] is None
    assert "cancel" not in view["targets"]
    app.send(do="shot", name="finish-not-submitted")
    app.wait_shot("finish-not-submitted")
    app.click_target(view, "finish")
    view = app.wait_view(step="attract", reason="finished", screen="attract")  # no rating: nothing was sent
    assert view["message"] == "card.take_back"
    app.send(do="card_removed")

    # the visits are over: no widget still holds a citizen's name, number, address or answers
    texts = app.ask("texts", do="texts")["texts"]
    personal = ("张三", "110101199003071234", "景山前街", "李四", "110101194501011238", "西城区",
                "王小宝", "13800138000", "测试路2号", "SQ20261127000042", "SQ20261101000007")
    leaked = [t for t in texts if any(s in t for s in personal)]
    assert not leaked, f"personal data left in widgets after the visit: {leaked}"


def test_idle_warning_in_both_languages(kiosk_app):
    """The idle warning over a step of the visit, in Chinese, then in English (screenshots)."""
    app = kiosk_app()
    app.click_target(app.ready, "start")
    view = app.wait_view(step="identify", reason="start")
    warning = app.wait_view(step="identify", reason="warning", timeout=10)
    assert warning["overlay"] and warning["language"] == "zh-CN" and set(warning["targets"]) == {"keep_alive"}
    app.send(do="shot", name="zh-CN-idle-warning")
    app.wait_shot("zh-CN-idle-warning")
    app.click_target(warning, "keep_alive")
    view = app.wait_view(step="identify", reason="continue")
    app.click_target(view, "language")
    app.wait_view(step="identify", reason="language", language="en")
    warning = app.wait_view(step="identify", reason="warning", language="en", timeout=10)
    assert warning["overlay"] and set(warning["targets"]) == {"keep_alive"}
    app.send(do="shot", name="en-idle-warning")
    app.wait_shot("en-idle-warning")
    back = app.wait_view(step="attract", reason="timeout", timeout=10)
    assert back["language"] == "zh-CN" and not back["overlay"]


def test_printer_notices_paper_fallback_and_queue_ticket(kiosk_app):
    """What the printers change on screen: notices before choosing, the QR code and the SMS
    button when paper failed, and the queue-ticket screen of an appointment check-in."""
    app = kiosk_app(KIOSK__VISIT__IDLE_TIMEOUT_S="60", KIOSK__VISIT__IDENTIFY_TIMEOUT_S="60")
    app.wait_shot("attract")
    app.click_target(app.ready, "start")
    app.wait_view(step="identify", reason="start")
    app.send(do="card", name="张三", id_number="110101199003071234", address="北京市东城区景山前街4号")
    view = app.wait_view(step="home", screen="home")
    app.click_target(view, "browse")
    view = app.wait_view(step="choose", reason="browse", screen="choose")
    assert "choose:social-insurance-record" in view["targets"]

    # the printers are out: said before anyone chooses, and what needs one is not offered
    app.send(do="equipment", notices=["notice.no_receipt_paper", "notice.no_certificates"], unavailable=["service"])
    view = app.wait_view(step="choose", reason="equipment", screen="choose")
    assert not [t for t in view["targets"] if t.startswith("choose:")]
    app.send(do="shot", name="choose-printer-notices")
    app.wait_shot("choose-printer-notices")
    app.send(do="equipment", notices=[], unavailable=[])
    view = app.wait_view(step="choose", reason="equipment", screen="choose")

    app.send(do="submitter", receipt="SQ20261127000042")
    app.click_target(view, "choose:social-insurance-record")
    # the terminal's own catalogue: no notice and no materials, a form read from the card
    view = app.wait_view(step="form", reason="choose", screen="form")
    assert view["position"] == [1, 2] and not [f for f in view["fields"] if f["editable"]]
    app.click_target(view, "next")
    view = app.wait_view(step="review", reason="next", screen="review")
    app.click_target(view, "confirm")
    view = app.wait_view(step="finish", reason="submitted", screen="finish")
    assert "request_sms" not in view["targets"]
    # this terminal has no receipt printer: said at once; without a platform there is no progress
    # page to show as a QR code and no SMS, so the citizen is asked to note the number
    view = app.wait_view(step="finish", reason="handout", handout="handout.note_number", sms="")
    assert "request_sms" not in view["targets"]

    # the receipt printer ran out: the progress page as a QR code, and an SMS on request
    app.send(do="handout", key="handout.paper_out", values={"receipt": "SQ20261127000042"},
             qr="https://zwfw.example.gov.cn/progress/SQ20261127000042", sms="offer")
    view = app.wait_view(step="finish", reason="handout", screen="finish", handout="handout.paper_out")
    assert "request_sms" in view["targets"] and "finish" in view["targets"]
    app.send(do="shot", name="finish-paper-out")
    shot = app.wait_shot("finish-paper-out")
    app.click_target(view, "request_sms")
    view = app.wait_view(step="finish", reason="sms", screen="finish", sms="sending")
    assert "request_sms" not in view["targets"]  # asked once: the button goes while it is sent
    app.click_target(view, "finish")
    view = app.wait_view(step="rating", reason="finished", screen="rating")
    app.click_target(view, "finish")  # no rating given
    view = app.wait_view(step="attract", reason="finished", screen="attract")
    app.send(do="card_removed")

    # 预约取号: an appointment code held up on the attract screen
    app.send(do="ticket", key="ticket.printed", values={"ticket": "A023", "waiting": "3",
                                                         "counter": "社保医保窗口（政务服务中心）"})
    view = app.wait_view(step="ticket", reason="handout", screen="ticket")
    assert "finish" in view["targets"]
    app.send(do="shot", name="ticket")
    app.wait_shot("ticket")
    app.click_target(view, "finish")
    app.wait_view(step="attract", reason="finished", screen="attract")

    # the QR code is really on the screen, and decodes to the link
    import zxingcpp
    from PIL import Image

    decoded = [r.text for r in zxingcpp.read_barcodes(Image.open(shot).convert("L"))]
    assert decoded == ["https://zwfw.example.gov.cn/progress/SQ20261127000042"]
