"""The technician's maintenance screen under a real X server: the hidden gesture, the PIN pad
(a wrong PIN refused and audited, the right one opens), the device list with a fault in words,
the self-test's pass/fail table, the outbox, English, and 退出 back to the attract screen.

One app start: the receipt printer and the QR scanner on their emulators, an ID-card reader
configured on a port that does not exist (a fault to read), a PIN hash made with few PBKDF2
iterations. Screenshots in artifacts/screenshots/test_maintenance_screen/.
"""
from __future__ import annotations

import json
from pathlib import Path

from kiosk.maintenance import make_hash

SALT = "ui-test-salt-0123456"
PIN = "135790"
CORNER = (30, 30)  # the top-left corner of the 1280 x 800 window (the header's title)


def test_maintenance_screen(kiosk_app, tmp_path: Path) -> None:
    data = tmp_path / "var"
    app = kiosk_app(
        KIOSK__TERMINAL__ID="ZJ-UI-0001", KIOSK__TERMINAL__DATA_DIR=str(data),
        KIOSK__MAINTENANCE__SALT=SALT, KIOSK__MAINTENANCE__PIN_HASH=make_hash("pin", PIN, SALT, 1000),
        KIOSK__DEVICES__RECEIPT_PRINTER__ENABLED="true", KIOSK__DEVICES__RECEIPT_PRINTER__EMULATE="true",
        KIOSK__DEVICES__RECEIPT_PRINTER__EMULATOR__OUT_DIR=str(tmp_path / "receipts"),
        KIOSK__DEVICES__QR_SCANNER__ENABLED="true", KIOSK__DEVICES__QR_SCANNER__EMULATE="true",
        KIOSK__DEVICES__IDCARD__ENABLED="true", KIOSK__DEVICES__IDCARD__PORT="/dev/kiosk-no-such-tty",
        KIOSK__DEVICES__SMARTCARD__ENABLED="false",
        KIOSK__VISIT__IDLE_TIMEOUT_S="600", KIOSK__VISIT__IDENTIFY_TIMEOUT_S="600")
    audit = data / "audit" / "maintenance.jsonl"

    def maintenance(timeout: float = 15.0, **expected):
        def matches(e: dict) -> bool:
            return e.get("event") == "maintenance" and all(e.get(k) == v for k, v in expected.items())
        return app.wait_for(matches, f"a maintenance line with {expected}", timeout)

    def shot(name: str) -> Path:
        app.send(do="shot", name=name)
        return app.wait_shot(name)

    def type_pin(event: dict, pin: str) -> dict:
        for digit in pin:
            app.click_target(event, f"pin:{digit}")
        event = maintenance(pin_length=len(pin), reason="digit")
        app.click_target(event, "pin:ok")
        return event

    # four touches in the corner are not enough; a fifth within 3 s asks for the PIN pad
    assert "start" in app.ready["targets"]
    window = app.window()
    app.xdotool("mousemove", "--window", window, *map(str, CORNER), "click", "--repeat", "5", "--delay", "150", "1")
    pad = maintenance(state="asking", reason="request")
    assert {f"pin:{d}" for d in "0123456789"} | {"pin:clear", "pin:ok", "pin:cancel"} == set(pad["targets"])
    app.wait_shot("maintenance-pin")

    # a wrong PIN: refused, said, audited
    type_pin(pad, "1111")
    wrong = maintenance(state="asking", reason="wrong_pin")
    assert wrong["message"] == "maintenance.pin_wrong" and wrong["pin_length"] == 0
    shot("maintenance-pin-wrong")
    entries = [json.loads(line) for line in audit.read_text(encoding="utf-8").splitlines()]
    assert [(e["who"], e["action"], e["outcome"]) for e in entries] == [
        ("", "request", "pin_pad"), ("pin", "login", "wrong_pin")]

    # the right PIN opens the maintenance screen: every device with its status
    for digit in PIN[:3]:
        app.click_target(wrong, f"pin:{digit}")
    maintenance(pin_length=3, reason="digit")
    shot("maintenance-pin-typing")  # three dots, never the digits
    for digit in PIN[3:]:
        app.click_target(wrong, f"pin:{digit}")
    maintenance(pin_length=len(PIN), reason="digit")
    app.click_target(wrong, "pin:ok")
    opened = maintenance(state="open", reason="opened")
    assert opened["who"] == "pin" and opened["page"] == "devices"
    assert opened["devices"]["receipt_printer"] == "online" and opened["devices"]["idcard"] != "online"
    assert {"maint:self_test", "maint:test_print", "maint:outbox", "maint:close",
            "restart:idcard"} <= set(opened["targets"])
    assert "start" not in opened["targets"]  # the attract screen underneath cannot be touched
    app.wait_shot("maintenance")

    # the self-test: progress, then the pass/fail table
    app.click_target(opened, "maint:self_test")
    maintenance(state="open", task="self_test")
    done = maintenance(state="open", reason="self_test_done", timeout=60)
    assert done["page"] == "checks" and done["task"] is None and done["message"] == "maintenance.self_test_failed"
    assert done["checks"] == {"idcard": False, "receipt_printer": True, "qr_scanner": True}
    shot("maintenance-self-test")

    # a test page on the receipt printer (its emulator keeps what was printed)
    app.click_target(done, "maint:test_print")
    printed = maintenance(state="open", reason="test_print_done", timeout=30)
    assert printed["message"] == "maintenance.printed" and printed["checks"] == {"receipt_printer": True}
    shot("maintenance-test-print")

    # the outbox (no platform in this test), then the table in English
    app.click_target(printed, "maint:outbox")
    outbox = maintenance(state="open", reason="outbox")
    assert outbox["message"] == "maintenance.outbox.none" and outbox["outbox"] is None
    app.click_target(outbox, "maint:devices")
    devices = maintenance(state="open", reason="devices")
    app.click_target(devices, "maint:language")
    english = maintenance(state="open", reason="language", language="en")
    shot("maintenance-en")
    app.click_target(english, "maint:self_test")
    english = maintenance(state="open", reason="self_test_done", timeout=60)
    shot("maintenance-self-test-en")

    # 退出: back to the attract screen, in Chinese, and a touch reaches 开始办理 again
    app.click_target(english, "maint:close")
    maintenance(state="locked", reason="closed")
    app.wait_shot("attract")
    view = app.look()
    assert view["screen"] == "attract" and view["step"] == "attract" and "start" in view["targets"]
    actions = [(e["action"], e["outcome"]) for e in
               (json.loads(line) for line in audit.read_text(encoding="utf-8").splitlines())]
    assert actions[2:] == [("login", "ok"), ("self_test", "failed"), ("test_print", "printed"),
                           ("outbox", "no_platform"), ("status", "shown"),
                           ("self_test", "failed"), ("close", "closed")]
