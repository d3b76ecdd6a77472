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


def test_walk_through_every_screen(kiosk_app):
    """A whole visit by clicks and card events; a screenshot of every screen for review."""
    app = kiosk_app(KIOSK__VISIT__IDLE_TIMEOUT_S="60", KIOSK__VISIT__IDENTIFY_TIMEOUT_S="60")
    app.wait_shot("attract")

    app.click_target(app.ready, "language")
    view = app.wait_view(step="attract", reason="language", language="en")
    app.wait_shot("attract-en")
    app.click_target(view, "language")
    view = app.wait_view(step="attract", reason="language", language="zh-CN")

    app.click_target(view, "start")
    view = app.wait_view(step="identify", reason="start")
    app.wait_shot("identify")
    app.send(do="card_failed")
    view = app.wait_view(step="identify", reason="card_failed", message="identify.read_failed")
    app.send(do="shot", name="identify-notice")
    app.wait_shot("identify-notice")

    app.send(do="card", name="张三", id_number="110101199003071234", address="北京市东城区景山前街4号")
    view = app.wait_view(step="choose", reason="card", screen="choose")
    app.wait_shot("choose")
    app.click_target(view, "choose:social-insurance-record")
    view = app.wait_view(step="review", reason="choose", screen="review")
    app.wait_shot("review")
    app.click_target(view, "back")
    view = app.wait_view(step="choose", reason="back", screen="choose")
    app.wait_shot("choose")
    app.click_target(view, "choose:real-estate-record")
    view = app.wait_view(step="review", reason="choose", screen="review")
    app.wait_shot("review")
    app.click_target(view, "language")
    view = app.wait_view(step="review", reason="language", language="en")
    app.wait_shot("review-en")
    app.click_target(view, "language")
    view = app.wait_view(step="review", reason="language", language="zh-CN")

    app.click_target(view, "confirm")
    view = app.wait_view(step="finish", screen="finish")
    assert "cancel" not in view["targets"]  # nothing left to cancel: see screens/finish.py
    app.wait_shot("finish")
    app.click_target(view, "finish")
    view = app.wait_view(step="attract", reason="finished", screen="attract")
    assert view["message"] == "card.take_back"  # the card is still on the reader
    app.wait_shot("attract")

    app.send(do="card_removed")

    # a second visit, this time the platform accepts the application
    app.send(do="submitter", receipt="SQ20260001")
    app.click_target(view, "start")
    app.wait_view(step="identify", reason="start")
    app.send(do="card", name="李四", id_number="110101194501011238", address="北京市西城区")
    view = app.wait_view(step="choose", reason="card", screen="choose")
    app.click_target(view, "choose:housing-fund-record")
    view = app.wait_view(step="review", reason="choose", screen="review")
    app.click_target(view, "confirm")
    view = app.wait_view(step="finish", reason="submitted", screen="finish")
    app.wait_shot("finish")
    app.click_target(view, "finish")
    view = app.wait_view(step="attract", reason="finished", screen="attract")

    # the visits are over: no widget still holds a citizen's name, number or address
    app.send(do="texts")
    texts = app.wait_for(lambda e: e.get("event") == "texts", "the texts of every screen")["texts"]
    personal = ("张三", "110101199003071234", "景山前街", "李四", "110101194501011238", "SQ20260001")
    leaked = [t for t in texts if any(s in t for s in personal)]
    assert not leaked, f"personal data left in widgets after the visit: {leaked}"


def test_visits_reuse_the_same_widgets(kiosk_app):
    """The kiosk runs for days: a visit must not leave widgets behind."""
    app = kiosk_app(KIOSK__VISIT__IDLE_TIMEOUT_S="60", KIOSK__VISIT__IDENTIFY_TIMEOUT_S="60")

    def one_visit(n: int) -> None:
        app.send(do="act", action="start")
        app.wait_view(step="identify", reason="start")
        if n % 2:
            app.send(do="act", action="language")
            app.wait_view(step="identify", reason="language")
        app.send(do="card", name=f"测试{n}", id_number=f"11010119900307{n:04d}")
        app.wait_view(step="choose", reason="card")
        service = ("social-insurance-record", "real-estate-record")[n % 2]
        app.send(do="act", action="choose", args=[service])
        app.wait_view(step="review", reason="choose")
        app.send(do="act", action="confirm")
        app.wait_view(step="finish")
        app.send(do="act", action="finish")
        app.wait_view(step="attract", reason="finished")

    def stats() -> dict:
        app.send(do="stats")
        return app.wait_for(lambda e: e.get("event") == "stats", "widget statistics")

    for n in range(2):  # every screen, both forms, both languages built once
        one_visit(n)
    before = stats()
    for n in range(2, 12):
        one_visit(n)
    after = stats()
    print(f"widgets {before['widgets']} -> {after['widgets']}, "
          f"RSS {before['rss_kb'] / 1024:.1f} -> {after['rss_kb'] / 1024:.1f} MB over 10 visits")
    assert after["widgets"] == before["widgets"], "widgets are created per visit and never freed"


def test_printer_notices_paper_fallback_and_queue_ticket(kiosk_app):
    """What the printers change on screen: notices before choosing, the QR code and the SMS
    button when paper failed, and the queue-ticket screen of an appointment check-in."""
    app = kiosk_app(KIOSK__VISIT__IDLE_TIMEOUT_S="60", KIOSK__VISIT__IDENTIFY_TIMEOUT_S="60")
    app.wait_shot("attract")
    app.click_target(app.ready, "start")
    app.wait_view(step="identify", reason="start")
    app.send(do="card", name="张三", id_number="110101199003071234", address="北京市东城区景山前街4号")
    view = app.wait_view(step="choose", reason="card", screen="choose")
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
    view = app.wait_view(step="review", reason="choose", screen="review")
    app.click_target(view, "confirm")
    view = app.wait_view(step="finish", reason="submitted", screen="finish")
    assert "request_sms" not in view["targets"]
    # this terminal has no receipt printer: said at once, and without a platform no SMS either
    view = app.wait_view(step="finish", reason="handout", handout="handout.no_printer", sms="")
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
