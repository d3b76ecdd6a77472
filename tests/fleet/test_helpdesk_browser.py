"""The help-desk console in a real headless Chromium, fed by a real mosquitto.

Staff log in, watch a terminal go offline by its last will, take a help call from the queue,
see the kiosk's screen (personal values masked as ●●●), point at it and send a message that
the terminal receives as a signed command. One Chromium for the module; the console runs on
127.0.0.1 on a free port; simulated terminals (helpdesk.sim_terminal) use their own accounts.
Screenshots go to the pytest temp folder (HELPDESK_SHOTS=/some/dir keeps them elsewhere).
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fleet_browser import MEDIA_FLAGS, headless_chromium, ice_on_loopback
from waiting import wait_for

from fleet.broker import Broker
from fleet.protocol import CommandVerifier
from govapi.signing import KeyPair
from helpdesk.console import Console, ConsoleSettings
from helpdesk.server import ConsoleServer
from helpdesk.sim_terminal import (
    SAMPLE_ID_NUMBER,
    SAMPLE_NAME,
    SAMPLE_PHONE,
    SimTerminal,
    sample_mirror,
)

ROOT = Path(__file__).resolve().parents[2]
WAIT_S = 20.0
PASSWORD = "correct horse battery"


@pytest.fixture(scope="module")
def keypair() -> KeyPair:
    return KeyPair.generate()


@pytest.fixture(scope="module")
def console_url(fleet_broker: Broker, keypair: KeyPair, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    settings = ConsoleSettings(data_dir=tmp_path_factory.mktemp("helpdesk-browser"),
                               account=fleet_broker.console_account(), client_id="helpdesk-browser-test",
                               reply_timeout_s=5.0)
    console = Console(settings, keypair=keypair)
    console.store.add_staff("wang", "王芳", "supervisor", PASSWORD)
    server = ConsoleServer(console).start()
    try:
        assert console.bridge is not None
        wait_for(console.bridge.connected.is_set, "the console connects to the broker")
        yield server.url
    finally:
        server.stop()
        console.close()


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    with headless_chromium("--window-size=1440,1000", "--lang=zh-CN", *MEDIA_FLAGS) as driver:
        yield driver


@pytest.fixture(scope="module")
def shots(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = Path(os.environ.get("HELPDESK_SHOTS") or tmp_path_factory.mktemp("shots"))
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def until(driver: Any, condition: Any, what: str) -> Any:
    from selenium.webdriver.support.ui import WebDriverWait

    return WebDriverWait(driver, WAIT_S, poll_frequency=0.1).until(condition, message=what)


def css(driver: Any, selector: str) -> Any:
    from selenium.webdriver.common.by import By

    return driver.find_element(By.CSS_SELECTOR, selector)


def row_state(driver: Any, terminal_id: str) -> tuple[str, str] | None:
    from selenium.common.exceptions import (
        NoSuchElementException,
        StaleElementReferenceException,
    )

    try:
        row = css(driver, f"#terminal-{terminal_id}")
        return row.get_attribute("data-online"), row.text
    except (NoSuchElementException, StaleElementReferenceException):
        return None


def click(driver: Any, selector: str) -> None:
    """Click what the selector finds now; live pages replace rows and buttons at any moment."""
    from selenium.common.exceptions import (
        NoSuchElementException,
        StaleElementReferenceException,
    )

    def clicked(d: Any) -> bool:
        try:
            css(d, selector).click()
            return True
        except (NoSuchElementException, StaleElementReferenceException):
            return False

    until(driver, clicked, f"click {selector}")


def text_of(driver: Any, element_id: str) -> str:
    """An element's text read in one script call: live pages re-render rows at any moment."""
    return str(driver.execute_script(
        "var e = document.getElementById(arguments[0]); return e ? e.innerText : '';", element_id))


def test_staff_log_in_and_see_a_killed_terminal_go_offline(browser: Any, console_url: str, fleet_broker: Broker,
                                                           shots: Path, tmp_path: Path) -> None:
    account = fleet_broker.add_terminal("KIOSK-0042")
    password_file = tmp_path / "pw"
    password_file.write_text(account.password)
    password_file.chmod(0o600)
    child = subprocess.Popen([sys.executable, "-m", "helpdesk.sim_terminal", "--host", account.host, "--port",
                              str(account.port), "--ca-file", account.ca_file, "--username", account.username,
                              "--password-file", str(password_file), "--keepalive", "2", "--heartbeat", "30",
                              "--location", "XX 银行 1 楼"], cwd=ROOT, stdout=subprocess.PIPE, text=True)
    try:
        browser.get(console_url + "/login")
        css(browser, "#name").send_keys("wang")
        css(browser, "#password").send_keys(PASSWORD)
        css(browser, "#login-button").click()
        until(browser, lambda d: d.current_url.rstrip("/") == console_url, "the fleet page opens after login")
        assert child.stdout is not None and child.stdout.readline().strip() == "ready"
        until(browser, lambda d: (s := row_state(d, "KIOSK-0042")) and s[0] == "yes", "the terminal shows online")
        assert "XX 银行 1 楼" in css(browser, "#terminal-KIOSK-0042").text
        browser.save_screenshot(str(shots / "fleet-online.png"))
        child.send_signal(signal.SIGKILL)  # no goodbye: only the broker's keep-alive (2 s x 1.5) notices
        child.wait(10)
        state = until(browser, lambda d: (s := row_state(d, "KIOSK-0042")) and s[0] == "no" and s,
                      "the terminal shows offline by its last will")
        assert "离线" in state[1] and "连接中断" in state[1]
        browser.save_screenshot(str(shots / "fleet-offline.png"))
        browser.get(console_url + "/alerts")
        until(browser, lambda d: "KIOSK-0042" in css(d, "#alerts-rows").text, "the offline alert is listed")
        assert "终端离线" in css(browser, "#alerts-rows").text
        browser.save_screenshot(str(shots / "alerts.png"))
    finally:
        if child.poll() is None:
            child.kill()
            child.wait(10)


def test_accept_a_call_see_the_masked_screen_point_and_send_a_message(browser: Any, console_url: str,
                                                                     fleet_broker: Broker, keypair: KeyPair,
                                                                     shots: Path) -> None:
    from selenium.webdriver.common.action_chains import ActionChains

    sim = SimTerminal(fleet_broker.add_terminal("KIOSK-0007"), location="市民中心 2 楼",
                      console_key=(keypair.algorithm, keypair.public_key)).start(heartbeats=False)
    verifier = CommandVerifier(sim.id, keypair.algorithm, keypair.public_key)
    try:
        sim.devices["receipt_printer"].update(media="low")
        sim.publish_devices()
        sim.heartbeat(step="form", in_visit=True, pending=3)
        browser.get(console_url + "/calls")
        sim.help("call-77", "waiting", step="form", language="zh-CN")
        button = until(browser, lambda d: d.find_elements("css selector", 'button.accept[data-call="call-77"]'),
                       "the call appears in the queue with an Accept button")[0]
        assert "市民中心 2 楼" in css(browser, "#waiting-rows").text
        browser.save_screenshot(str(shots / "queue.png"))
        button.click()
        until(browser, lambda d: d.current_url.endswith("/calls/KIOSK-0007/call-77"), "the call page opens")
        accept = verifier.check(sim.next_command("accept_call"))
        assert accept["args"]["staff_name"] == "王芳"

        sim.screen("call-77", sample_mirror("call-77"), seq=1, consent="asked")
        until(browser, lambda d: d.find_elements("css selector", '.k-field[data-key="id_number"] .k-value'),
              "the kiosk's screen is mirrored")
        values = {e.get_attribute("data-key"): e.text for e in browser.find_elements("css selector", ".k-field")}
        assert set(values) == {"name", "id_number", "phone", "relation"}
        assert all("●●●" in values[k] for k in ("name", "id_number", "phone")), values
        page = browser.page_source
        assert SAMPLE_ID_NUMBER not in page and SAMPLE_PHONE not in page and SAMPLE_NAME not in page
        assert "已请市民确认" in css(browser, "#consent-badge").text

        mirror = css(browser, "#mirror")
        ActionChains(browser).move_to_element_with_offset(mirror, mirror.size["width"] // 4, 0).click().perform()
        point = verifier.check(sim.next_command("point"))["args"]
        assert 0.7 < point["x"] < 0.8 and 0.45 < point["y"] < 0.55, point

        css(browser, "#message-text").send_keys("请点击右下角的“下一步”。")
        css(browser, "#send-message").click()
        message = verifier.check(sim.next_command("message"))
        assert message["args"] == {"call_id": "call-77", "text": "请点击右下角的“下一步”。"}
        until(browser, lambda d: "请点击右下角" in css(d, "#transcript").text, "the message shows in the conversation")
        assert css(browser, "#message-text").get_attribute("value") == ""
        browser.save_screenshot(str(shots / "call.png"))

        css(browser, "#lang-switch").click()
        until(browser, lambda d: "Help call · KIOSK-0007" in css(d, "h1").text, "the page switches to English")
        until(browser, lambda d: "Personal details" in css(d, "#consent-badge").text or
              "Asked the citizen" in css(d, "#consent-badge").text, "the live call page comes back in English")
        browser.save_screenshot(str(shots / "call-en.png"))
        sim.help("call-77", "ended", reason="citizen_ended")
        until(browser, lambda d: "citizen ended it" in css(d, "#call-ended").text,
              "the page says the citizen ended the call")
        assert css(browser, "#send-message").get_attribute("disabled") is not None
    finally:
        sim.stop()


def test_a_real_kiosk_help_call_from_the_console(browser: Any, console_url: str, fleet_broker: Broker,
                                                 keypair: KeyPair, shots: Path, tmp_path: Path) -> None:
    """The whole chain with the real terminal: a headless Terminal (emulated receipt printer,
    FleetAgent over TLS with its own account) and this module's console in Chromium. Paper runs
    out and the fleet page says so; the citizen presses 求助 on the form; staff accept, see the
    screen masked, send a message the kiosk shows and speaks, point, see the values once the
    citizen consents, move the visit to the notice, and end the call; both sides audit it."""
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.support.ui import Select
    from terminal_config import write_config
    from test_fleet_agent import TERMINAL, Card, Recorder, fleet_env, password_file

    from config.loader import load_config
    from govplatform.catalogue import load_catalogue
    from kiosk.catalogue import Catalogue
    from kiosk.terminal import Terminal
    from kiosk.visit import Step

    citizen = Card(name="赵小燕")
    name, id_number = citizen.name, citizen.id_number  # the card is wiped when the visit ends
    path = write_config(tmp_path, {"receipt_printer": "emulate = true\n[devices.receipt_printer.emulator]\n"
                                                      "render = false",
                                   "camera": "emulate = true\nwidth = 320\nheight = 240"})
    # the help desk sees the kiosk camera in a video call; the staff voice goes to ALSA's null
    env = fleet_env(fleet_broker, password_file(tmp_path / "secret", fleet_broker.add_terminal(TERMINAL)), keypair,
                    media_camera="camera", speaker="null")
    speaker = Recorder()
    terminal = Terminal(load_config(path, environ=env), speaker=speaker)
    terminal.visit.replace_catalogue(Catalogue.from_platform(load_catalogue()))
    terminal.start()
    try:
        assert terminal.fleet is not None and terminal.fleet.wait_connected(WAIT_S)
        camera = terminal.devices["camera"]
        browser.get(console_url + "/")
        if "/login" in browser.current_url:
            css(browser, "#name").send_keys("wang")
            css(browser, "#password").send_keys(PASSWORD)
            css(browser, "#login-button").click()
        browser.get(console_url + "/lang/zh-CN?next=/")  # an earlier test may have left it in English
        until(browser, lambda d: (s := row_state(d, TERMINAL)) and s[0] == "yes", "the real terminal shows online")
        terminal.emulators["receipt_printer"].paper_out()
        until(browser, lambda d: "缺纸" in text_of(d, f"terminal-{TERMINAL}"), "the fleet page shows paper out")
        browser.save_screenshot(str(shots / "e2e-fleet-paper-out.png"))
        terminal.emulators["receipt_printer"].paper_ok()

        visit = terminal.visit
        visit.start()
        visit.card_read(citizen)
        visit.browse()
        visit.choose("newborn")
        visit.next()
        assert visit.step is Step.FORM
        browser.get(console_url + "/calls")
        visit.help()  # the citizen's touch on 求助
        until(browser, lambda d: d.find_elements("css selector", "button.accept"), "the call is queued")
        click(browser, "button.accept")
        until(browser, lambda d: f"/calls/{TERMINAL}/" in d.current_url, "the call page opens")
        until(browser, lambda d: visit.view().help is not None and visit.view().help.state == "connected",
              "the kiosk shows the staff member connected")
        assert visit.view().help.staff == "王芳"
        until(browser, lambda d: d.find_elements("css selector", ".k-field"), "the kiosk's form is mirrored")
        page = browser.page_source
        assert name not in page and id_number not in page, "personal values shown before consent"
        assert "●●●" in css(browser, "#mirror").text
        browser.save_screenshot(str(shots / "e2e-call-masked.png"))

        css(browser, "#message-text").send_keys("请核对您的联系电话")
        click(browser, "#send-message")
        until(browser, lambda d: visit.view().help.messages == ("请核对您的联系电话",), "the kiosk shows the message")
        until(browser, lambda d: "请核对您的联系电话" in speaker.texts, "the kiosk speaks the message")

        mirror = css(browser, "#mirror")
        ActionChains(browser).move_to_element_with_offset(mirror, 0, 0).click().perform()  # the centre
        pointer = until(browser, lambda d: visit.view().help.pointer, "the kiosk shows the pointer")
        assert abs(pointer[0] - 0.5) < 0.1 and abs(pointer[1] - 0.5) < 0.1, pointer

        # a video call: Chromium's fake microphone to the kiosk, the kiosk camera to the browser,
        # through the console's endpoint, the broker and the terminal's HelpMedia (aiortc)
        until(browser, lambda d: camera.status().device.value == "online", "the kiosk camera is up")
        with ice_on_loopback():
            click(browser, "#start-media")
            width = until(browser, lambda d: d.execute_script(
                "return document.getElementById('remote-video').videoWidth"), "the kiosk camera shows in the browser")
            assert width == 320
            click(browser, "#stop-media")
            until(browser, lambda d: css(d, "#media-status").get_attribute("data-state") == "stopped",
                  "the video call stops")

        visit.give_consent(True)  # the citizen's touch on 显示我的信息
        until(browser, lambda d: name in text_of(d, "mirror"), "consented values are mirrored")
        browser.save_screenshot(str(shots / "e2e-call-consented.png"))

        Select(css(browser, "#goto-step")).select_by_value("notice")
        click(browser, "#goto-button")
        until(browser, lambda d: visit.step is Step.NOTICE, "the visit moves to the notice")
        notice = visit.view().item.notice
        assert notice, "the newborn bundle has a notice to read"
        until(browser, lambda d: notice[:12] in text_of(d, "mirror"), "staff read the notice the citizen reads")
        Select(css(browser, "#goto-step")).select_by_value("review")  # not reached: the kiosk refuses
        click(browser, "#goto-button")
        until(browser, lambda d: "市民还没有到达这一步" in text_of(d, "call-status"),
              "the terminal's refusal is shown in the staff member's language")
        assert visit.step is Step.NOTICE

        click(browser, "#end-call")
        until(browser, lambda d: d.switch_to.alert, "the page asks to confirm ending the call").accept()
        until(browser, lambda d: visit.view().help.state == "ended", "the kiosk shows the call ended")
    finally:
        terminal.stop()
    kiosk_audit = [json.loads(line) for line in
                   (terminal.data_dir / terminal.cfg.fleet.audit_file).read_text(encoding="utf-8").splitlines()]
    done = [(line["action"], line["outcome"]) for line in kiosk_audit]
    for action in ("accept_call", "message", "point", "media_offer", "media_stop", "goto_step", "end_call"):
        assert (action, "done") in done, done
    assert all(line["who"] == "staff:王芳" for line in kiosk_audit if line["action"] == "message")
    assert name not in json.dumps(kiosk_audit, ensure_ascii=False)
    assert id_number not in json.dumps(kiosk_audit, ensure_ascii=False)
