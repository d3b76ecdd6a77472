"""A new "一件事" needs no code: a province drops a catalogue file next to the platform while
a terminal runs, and a citizen completes the new bundle on that terminal minutes later.

The real terminal (in this process, emulated ID-card reader over a pty) against the real
platform process with a catalogue folder of its own (setting catalogue_dir).
"""
from __future__ import annotations

import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from govplatform_harness import ROOT, Server, start_server

from config.loader import load_config
from kiosk.scenario import Runner, Scenario

TERMINAL_ID = "T-NEWBUNDLE-1"
BUNDLE = """
[[item]]
id = "volunteer-and-blood-donor"
kind = "bundle"
title = { zh-CN = "志愿服务与无偿献血登记一件事", en = "Volunteer and blood donor registration (one-stop)" }
category = "个人"
life_event = "社会保障"
summary = { zh-CN = "一次登记成为社区志愿者和无偿献血志愿者。", en = "Register once as a community volunteer and a blood donor." }
notice = { zh-CN = "测试用事项，仅用于验证终端无需改代码即可办理新增事项。", en = "A test item: proves a terminal runs a new item without code." }
steps = [
  { zh-CN = "刷身份证", en = "Show your ID card" },
  { zh-CN = "确认信息并提交", en = "Confirm and submit" },
]
form = [
  { key = "name", label = { zh-CN = "姓名", en = "Name" }, type = "text", required = true, source = "identity.name" },
  { key = "id_number", label = { zh-CN = "公民身份号码", en = "ID number" }, type = "text", required = true, source = "identity.id_number" },
  { key = "contact_phone", label = { zh-CN = "联系电话", en = "Contact phone" }, type = "phone", required = true, source = "profile.phone" },
]
materials = [
  { id = "id_card", title = { zh-CN = "居民身份证", en = "Resident ID card" }, e_licence = "id_card", required = true },
]
lead_department = "civil_affairs"
cooperating_departments = ["health"]
time_limit_days = 5
includes = [
  { id = "volunteer-registration", title = { zh-CN = "社区志愿者登记", en = "Community volunteer registration" }, department = "civil_affairs" },
  { id = "blood-donor-registration", title = { zh-CN = "无偿献血志愿者登记", en = "Blood donor registration" }, department = "health" },
]
"""


@pytest.fixture(scope="module")
def own(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Server, Path]]:
    folder = tmp_path_factory.mktemp("province-catalogue")
    for server in start_server(tmp_path_factory.mktemp("govplatform-newbundle"), catalogue_dir=str(folder)):
        yield server, folder


def test_a_bundle_added_while_the_terminal_runs_is_completed_without_code(
        own: tuple[Server, Path], tmp_path: Path) -> None:
    server, folder = own
    environ = {"KIOSK__TERMINAL__ID": TERMINAL_ID, "KIOSK__TERMINAL__DATA_DIR": str(tmp_path),
               "KIOSK__PLATFORM__URL": server.url, "KIOSK__PLATFORM__CATALOGUE_REFRESH_S": "0.5",
               "KIOSK__VOICE__ENABLED": "false", "KIOSK__FACE__ENABLED": "false",
               "KIOSK__DEVICES__CAMERA__ENABLED": "false", "KIOSK__DEVICES__RECEIPT_PRINTER__ENABLED": "false",
               "KIOSK__DEVICES__A4_PRINTER__ENABLED": "false", "KIOSK__DEVICES__SCANNER__ENABLED": "false",
               "KIOSK__DEVICES__QR_SCANNER__ENABLED": "false"}
    code = server.cli("enrolment-code", "--terminal-id", TERMINAL_ID).stdout.strip()
    done = subprocess.run([sys.executable, "-m", "provisioning", "enrol", "--code", code], cwd=ROOT,
                          env={**environ, "PATH": os.environ.get("PATH", "/usr/bin:/bin")},
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stdout + done.stderr

    with open(os.devnull, "w", encoding="utf-8") as quiet:
        runner = Runner(load_config(environ=environ), out=quiet)
        # the province publishes the new item a second after the terminal has started
        publish = threading.Timer(1.0, lambda: (folder / "50-province.toml").write_text(BUNDLE, encoding="utf-8"))
        publish.start()
        result = runner.run(Scenario("new bundle", [
            {"do": "expect", "step": "attract"},
            {"do": "wait", "seconds": 4},  # the terminal refreshes its catalogue every 0.5 s here
            {"do": "press", "button": "start"},
            {"do": "place_card", "card": "resident"},
            {"do": "expect", "step": "home"},
            {"do": "press", "button": "browse"},
            {"do": "expect", "step": "choose", "services_include": ["volunteer-and-blood-donor"]},
            {"do": "choose", "service": "volunteer-and-blood-donor"},
            {"do": "expect", "step": "notice"},  # the new item's own notice, from its file
            {"do": "press", "button": "next"},
            {"do": "expect", "step": "form"},
            {"do": "press", "button": "next"},  # nothing to type: the card and the platform filled it
            {"do": "expect", "step": "materials", "materials": {"id_card": "e_licence"}},
            {"do": "press", "button": "next"},
            {"do": "expect", "step": "review"},
            {"do": "press", "button": "confirm"},
            {"do": "expect", "step": "finish", "receipt": r"SQ\d{14}"},
            {"do": "remove_card"},
            {"do": "expect", "step": "rating"},
            {"do": "rate", "level": 5},
            {"do": "expect", "step": "attract", "notice": "rating.thanks"},
        ]))
        publish.cancel()
    assert result.passed, result.failure
    review = next(v for v in runner.views if v.step.value == "review")
    assert [f.key for f in review.fields] == ["name", "id_number", "contact_phone"]
    assert all(f.raw for f in review.fields)  # the card and the platform filled every field
    assert [f.source for f in review.fields] == ["card", "card", "platform"]
    assert server.db_count("SELECT count(*) FROM applications WHERE item_id = 'volunteer-and-blood-donor' "
                           "AND terminal_id = :t", t=TERMINAL_ID) == 1
    assert server.db_count("SELECT count(*) FROM department_tasks t JOIN applications a ON a.id = t.application_id "
                           "WHERE a.item_id = 'volunteer-and-blood-donor'") == 2  # both departments have it


def test_a_broken_file_keeps_the_last_good_catalogue(own: tuple[Server, Path]) -> None:
    server, folder = own
    terminal = server.enrol()
    before = terminal.call("GET", "/v1/catalogue").json()
    (folder / "60-broken.toml").write_text("[[item]\nid = ", encoding="utf-8")
    try:
        after = terminal.call("GET", "/v1/catalogue")
        assert after.status_code == 200 and after.json()["version"] == before["version"]
        assert "not reloaded" in server.log_file.read_text(encoding="utf-8")
    finally:
        (folder / "60-broken.toml").unlink()
