"""Scripted headless visits, end to end: main.py -> terminal -> real driver -> emulator on a pty."""
from __future__ import annotations

import os
import re
import subprocess
import sys
import wave
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SCENARIOS = sorted((ROOT / "tests" / "scenarios").glob("*.toml"))


def run_main(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    full_env = {**os.environ, "KIOSK__VOICE__ENABLED": "false", "KIOSK__PLATFORM__URL": "",
                "OPENCV_LOG_LEVEL": "ERROR", **(env or {})}
    full_env.pop("KIOSK_CONFIG", None)
    return subprocess.run([sys.executable, str(ROOT / "main.py"), *args], capture_output=True,
                          text=True, timeout=120, cwd=ROOT, env=full_env)


def test_there_are_scenarios() -> None:
    assert len(SCENARIOS) >= 3


@pytest.mark.parametrize("scenario", SCENARIOS, ids=lambda p: p.stem)
def test_scenario_passes(scenario: Path, tmp_path: Path) -> None:
    proc = run_main("--headless", "--scenario", str(scenario),
                    env={"KIOSK__TERMINAL__DATA_DIR": str(tmp_path)})
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "passed:" in proc.stdout
    assert "Traceback" not in proc.stderr


def test_resident_visit_prints_what_happened(tmp_path: Path) -> None:
    proc = run_main("--headless", "--scenario", str(ROOT / "tests/scenarios/resident_visit.toml"),
                    env={"KIOSK__TERMINAL__DATA_DIR": str(tmp_path)})
    out = proc.stdout
    for line in ("press start", "screen identify (start)", "place card resident",
                 "screen face (card)", "notice face.challenge.", "screen home (face)", "screen choose (browse)",
                 "screen form (choose)", "screen review (next)",
                 "screen finish (not_submitted, notice finish.not_submitted)",
                 "screen attract (card_removed)"):
        assert line in out, out
    # the log file was written, and holds no personal data in clear
    log_text = (tmp_path / "log" / "kiosk.log").read_text(encoding="utf-8")
    assert "step review" in log_text
    assert "张三" not in log_text and "11010519900307" not in log_text


def test_failed_expectation_says_what_the_screen_showed(tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text('[[steps]]\ndo = "expect"\nstep = "review"\nwithin_s = 0.5\n', encoding="utf-8")
    proc = run_main("--headless", "--scenario", str(bad), env={"KIOSK__TERMINAL__DATA_DIR": str(tmp_path)})
    assert proc.returncode == 1
    assert "expected step 'review' within 0.5s, but the screen is 'attract'" in proc.stdout


def test_malformed_scenario_is_refused_clearly(tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text('[[steps]]\ndo = "dance"\n', encoding="utf-8")
    proc = run_main("--headless", "--scenario", str(bad))
    assert proc.returncode == 2 and "use one of:" in proc.stderr and "Traceback" not in proc.stderr


@pytest.mark.parametrize("data, words", [
    (b"steps = [1]\n", "step 1 is not a table (int)"),
    (b'[[steps]]\ndo = "press"\nbutton = ["start"]\n', "presses ['start']"),
    ('[[steps]]\ndo = "press"\nbutton = "start"\nname = "一楼大厅"\n'.encode("gbk"), "not UTF-8"),
])
def test_malformed_scenario_file_is_a_scenario_error(tmp_path: Path, data: bytes, words: str) -> None:
    from kiosk.scenario import Scenario, ScenarioError

    bad = tmp_path / "bad.toml"
    bad.write_bytes(data)
    with pytest.raises(ScenarioError, match=re.escape(words)):
        Scenario.load(bad)


def test_reader_unplugged_mid_visit_then_back(tmp_path: Path) -> None:
    scenario = tmp_path / "unplug.toml"
    scenario.write_text("""
[[steps]]
do = "press"
button = "start"
[[steps]]
do = "device"
device = "idcard"
call = "unplug"
[[steps]]
do = "expect"
step = "identify"
notice = "identify.reader_offline"
[[steps]]
do = "device"
device = "idcard"
call = "replug"
[[steps]]
do = "place_card"
card = "hmt-permit"
[[steps]]
do = "expect"
step = "home"
within_s = 20
""", encoding="utf-8")
    proc = run_main("--headless", "--scenario", str(scenario), env={"KIOSK__TERMINAL__DATA_DIR": str(tmp_path),
                                                                     "KIOSK__FACE__ENABLED": "false",
                                                                     "KIOSK__DEVICES__SMARTCARD__ENABLED": "false"})
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_id_reader_unplugged_offers_the_social_security_card(tmp_path: Path) -> None:
    """With the smart-card reader still there, the citizen is told to use the other card, and can."""
    scenario = tmp_path / "unplug_id.toml"
    scenario.write_text("""
[[steps]]
do = "press"
button = "start"
[[steps]]
do = "device"
device = "idcard"
call = "unplug"
[[steps]]
do = "expect"
step = "identify"
notice = "identify.idcard_offline"
[[steps]]
do = "place_card"
device = "smartcard"
card = "li-si-gen2"
[[steps]]
do = "expect"
step = "home"
within_s = 20
""", encoding="utf-8")
    proc = run_main("--headless", "--scenario", str(scenario), env={"KIOSK__TERMINAL__DATA_DIR": str(tmp_path),
                                                                     "KIOSK__FACE__ENABLED": "false"})
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_voice_speaks_each_step_to_wav(tmp_path: Path) -> None:
    voice_dir = tmp_path / "voice"
    proc = run_main("--headless", "--scenario", str(ROOT / "tests/scenarios/expired_card.toml"),
                    env={"KIOSK__VOICE__ENABLED": "true", "KIOSK__VOICE__OUTPUT_DIR": str(voice_dir),
                         "KIOSK__TERMINAL__DATA_DIR": str(tmp_path)})
    assert proc.returncode == 0, proc.stdout + proc.stderr
    wavs = sorted(voice_dir.glob("*.wav"))
    assert wavs, "no prompt was spoken"
    with wave.open(str(wavs[-1])) as w:
        assert w.getnframes() > 0
