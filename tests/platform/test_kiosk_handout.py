"""What a citizen takes away, end to end: the real terminal (in this process, on emulated
devices over real pseudo-terminals and a private CUPS) against the real platform process.

- the platform unreachable: the application waits in the outbox and the acceptance receipt
  comes out of the ESC/POS emulator with the terminal's own number and its progress link;
- the receipt printer out of paper: the choose step says so first, and the finish step
  offers the progress page as a QR code instead;
- a certificate: issued by the platform, rendered to PDF and printed through CUPS;
- the A4 printer stopped: the certificate's verification page on screen, and an SMS
  through the platform on request.
"""
from __future__ import annotations

import datetime as dt
import os
import re
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from faultproxy import FaultProxy
from govplatform_harness import ROOT, Server, start_server

from config.loader import load_config
from config.schema import KioskConfig
from kiosk.scenario import Runner, Scenario

TERMINAL_ID = "T-HANDOUT-01"


@dataclass
class Setup:
    data_dir: Path
    proxy: FaultProxy
    url: str
    server: Server
    out: Path
    a4_dir: Path  # outside pytest's tmp_path: CUPS' filters run as user lp and must enter it

    def config(self, **extra: str) -> KioskConfig:
        environ = {"KIOSK__TERMINAL__ID": TERMINAL_ID, "KIOSK__TERMINAL__DATA_DIR": str(self.data_dir),
                   "KIOSK__PLATFORM__URL": self.url, "KIOSK__PLATFORM__TIMEOUT_S": "2",
                   "KIOSK__PLATFORM__DELIVERY_INTERVAL_S": "0.3", "KIOSK__VOICE__ENABLED": "false",
                   "KIOSK__FACE__ENABLED": "false", "KIOSK__DEVICES__CAMERA__ENABLED": "false",
                   "KIOSK__DEVICES__QR_SCANNER__ENABLED": "false", **extra}
        cfg = load_config(environ=environ)
        cfg.devices["receipt_printer"].emulator["out_dir"] = str(self.out)
        # a folder per visit, kept after the terminal stops so the test can read what printed
        a4 = Path(tempfile.mkdtemp(prefix="handout-a4-", dir=self.a4_dir))
        a4.chmod(0o711)
        cfg.devices["a4_printer"].emulator["directory"] = str(a4)
        return cfg


@pytest.fixture(scope="module")
def own(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """A platform of this module's own: check-in moves slots, which other modules book."""
    yield from start_server(tmp_path_factory.mktemp("govplatform-handout"))


@pytest.fixture(scope="module")
def setup(own: Server, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Setup]:
    server = own
    proxy = FaultProxy(int(server.url.rsplit(":", 1)[1]))
    url = proxy.start()
    data_dir = tmp_path_factory.mktemp("handout-kiosk")
    a4_dir = Path(tempfile.mkdtemp(prefix="kiosk-handout-", dir="/tmp"))
    a4_dir.chmod(0o711)
    s = Setup(data_dir, proxy, url, server, tmp_path_factory.mktemp("receipts"), a4_dir)
    code = server.cli("enrolment-code", "--terminal-id", TERMINAL_ID).stdout.strip()
    env = {"KIOSK__TERMINAL__ID": TERMINAL_ID, "KIOSK__TERMINAL__DATA_DIR": str(data_dir),
           "KIOSK__PLATFORM__URL": url, "PATH": "/usr/bin:/bin"}
    done = subprocess.run([sys.executable, "-m", "provisioning", "enrol", "--code", code], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stdout + done.stderr
    yield s
    proxy.stop()
    shutil.rmtree(a4_dir, ignore_errors=True)


@pytest.fixture
def clean(setup: Setup) -> Iterator[Setup]:
    setup.proxy.set("pass")
    yield setup
    setup.proxy.release()
    setup.proxy.set("pass")


def play(cfg: KioskConfig, steps: list[dict[str, Any]]) -> Runner:
    """One scripted visit in this process, on emulated devices; the runner keeps its views."""
    with open(os.devnull, "w", encoding="utf-8") as quiet:
        runner = Runner(cfg, out=quiet)
        result = runner.run(Scenario("handout", steps))
    assert result.passed, result.failure
    return runner


TO_CHOOSE = [  # identified (face check off here), the citizen's own page, then the services
    {"do": "press", "button": "start"},
    {"do": "place_card", "card": "resident"},
    {"do": "expect", "step": "home"},
    {"do": "press", "button": "browse"},
    {"do": "expect", "step": "choose"},
]
CERTIFICATE = [  # the item's steps: notice, the form's two choices, the ID card as e-licence, review
    {"do": "choose", "service": "social-insurance-record"},
    {"do": "expect", "step": "notice"},
    {"do": "press", "button": "next"},
    {"do": "expect", "step": "form"},
    {"do": "correct", "field": "record_type", "value": "contribution_proof"},
    {"do": "correct", "field": "period", "value": "12m"},
    {"do": "press", "button": "next"},
    {"do": "expect", "step": "materials", "materials": {"id_card": "e_licence"}},
    {"do": "press", "button": "next"},
    {"do": "expect", "step": "review"},
    {"do": "press", "button": "confirm"},
]
CERTIFICATE_VISIT = TO_CHOOSE + CERTIFICATE
# after a submission the citizen is asked for a rating (nothing personal kept); skipping it ends the visit
SKIP_RATING = [
    {"do": "expect", "step": "rating"},
    {"do": "press", "button": "finish"},
    {"do": "expect", "step": "attract"},
]


def finish_view(runner: Runner) -> Any:
    return [v for v in runner.views if v.step.value == "finish"][-1]


def test_platform_away_the_acceptance_receipt_prints_with_the_local_number(clean: Setup) -> None:
    clean.proxy.set("down")
    runner = play(clean.config(), CERTIFICATE_VISIT + [
        {"do": "expect", "step": "finish", "receipt": r"L\d{8}-T-HANDOUT-01-\d{6}"},
        {"do": "expect", "step": "finish", "handout": "handout.receipt_printed", "within_s": 20},
        {"do": "remove_card"},
        {"do": "expect", "step": "rating"},
        {"do": "rate", "level": 4},
        {"do": "expect", "step": "attract", "notice": "rating.thanks"},
    ])
    number = finish_view(runner).receipt
    printed = runner.terminal.emulators["receipt_printer"].receipts()
    assert len(printed) == 1 and printed[0].cut
    text = printed[0].text
    assert number in text and "受理回执" in text
    assert "网络" in text  # the calm note that it waits in the terminal and goes by itself
    assert "张三" not in text and "110101199003070011" not in text  # masked on paper
    assert [q.data.decode() for q in printed[0].qr_codes()] == [f"{clean.url}/progress/{number}"]
    assert printed[0].png is not None and printed[0].png.stat().st_size > 0


def test_out_of_paper_is_told_before_and_a_qr_code_is_offered_after(clean: Setup) -> None:
    clean.proxy.set("down")

    runner = play(clean.config(), [{"do": "device", "device": "receipt_printer", "call": "paper_out"}]
                  + TO_CHOOSE + [
        {"do": "expect", "step": "choose", "notices": ["notice.no_receipt_paper"]},
    ] + CERTIFICATE + [
        {"do": "expect", "step": "finish", "handout": "handout.paper_out", "within_s": 20},
        {"do": "press", "button": "finish"},
    ] + SKIP_RATING)
    view = finish_view(runner)
    handout = [v.handout for v in runner.views if v.handout is not None][-1]
    assert handout.qr is not None and handout.qr.endswith(f"/progress/{view.receipt}")
    assert handout.sms == ""  # queued: the platform does not know the citizen yet, so no SMS
    assert handout.values["receipt"] == view.receipt
    assert runner.terminal.emulators["receipt_printer"].receipts() == []


def test_a_certificate_is_issued_rendered_and_printed_through_cups(clean: Setup) -> None:
    runner = play(clean.config(), CERTIFICATE_VISIT + [
        {"do": "expect", "step": "finish", "receipt": r"SQ\d{14}"},
        {"do": "expect", "step": "finish", "handout": "handout.certificate_printed", "within_s": 60},
        {"do": "remove_card"},
    ] + SKIP_RATING)
    keys = [v.handout.message_key for v in runner.views if v.handout is not None]
    assert keys[0] == "handout.certificate_fetching" and "handout.certificate_queued" in keys
    printed = runner.terminal.emulators["a4_printer"].printed()
    assert len(printed) == 1 and printed[0].read_bytes().startswith(b"%PDF")
    assert runner.terminal.emulators["receipt_printer"].receipts() == []  # the certificate is the paper


def test_a4_out_of_paper_offers_the_verify_page_and_an_sms(clean: Setup) -> None:
    runner = play(clean.config(), [{"do": "device", "device": "a4_printer", "call": "paper_out"}]
                  + CERTIFICATE_VISIT + [
        {"do": "expect", "step": "finish", "handout": "handout.certificate_failed", "sms": "offer",
         "within_s": 60},
        {"do": "press", "button": "sms"},
        {"do": "expect", "step": "finish", "handout": "handout.sms_sent", "sms": "sent", "within_s": 20},
        {"do": "press", "button": "finish"},
    ] + SKIP_RATING)
    handout = [v.handout for v in runner.views if v.handout is not None][-1]
    assert handout.qr is not None and "/verify/" in handout.qr
    assert re.fullmatch(r"1[3-9]\d\*{4}\d{4}", handout.values["sent_to"])
    assert runner.terminal.emulators["a4_printer"].printed() == []
    receipt = finish_view(runner).receipt
    assert clean.server.db_count("SELECT count(*) FROM sms_messages WHERE receipt_number = :r", r=receipt) == 1


def test_an_appointment_code_on_the_attract_screen_prints_a_queue_ticket(clean: Setup, resident_card: dict) -> None:
    from test_platform_checkin import book

    terminal = clean.server.enrol()
    catalogue = terminal.call("GET", "/v1/catalogue").json()
    booked = book(clean.server, terminal, catalogue, resident_card, dt.timedelta(minutes=15))
    runner = play(clean.config(KIOSK__DEVICES__QR_SCANNER__ENABLED="true"), [
        {"do": "expect", "step": "attract"},
        {"do": "device", "device": "qr_scanner", "call": "scan", "args": ["https://pay.example.com/qr?x=1"]},
        {"do": "expect", "step": "attract", "notice": "code.untrusted_link"},
        {"do": "device", "device": "qr_scanner", "call": "scan", "args": [booked["appointment_code"]]},
        {"do": "expect", "step": "ticket", "handout": "ticket.printed", "within_s": 20},
        {"do": "press", "button": "finish"},
        {"do": "expect", "step": "attract"},
    ])
    handout = [v.handout for v in runner.views if v.handout is not None][-1]
    ticket = handout.values["ticket"]
    assert re.fullmatch(r"A\d{3}", ticket) and handout.values["counter"]
    printed = runner.terminal.emulators["receipt_printer"].receipts()
    assert len(printed) == 1 and printed[0].cut
    assert "排队凭条" in printed[0].text and ticket in printed[0].text


def test_a_mistyped_appointment_code_never_reaches_the_platform(clean: Setup) -> None:
    clean.proxy.set("down")  # anything sent would fail: nothing must be
    runner = play(clean.config(KIOSK__DEVICES__QR_SCANNER__ENABLED="true"), [
        {"do": "device", "device": "qr_scanner", "call": "scan", "args": ["YY2611270000420"]},
        {"do": "expect", "step": "attract", "notice": "code.bad_check_digit"},
    ])
    assert all(v.step.value == "attract" for v in runner.views)
