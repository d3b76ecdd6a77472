"""`python -m provisioning diagnose`: the support bundle holds what support needs and no personal
data: synthetic ID numbers, mobile numbers, names and addresses written into the logs (as the
kiosk's filter would have missed them) and a password in the configuration are gone from
every file of the bundle."""
from __future__ import annotations

import datetime as dt
import json
import os
import stat
import subprocess
import sys
import tarfile
import tomllib
from pathlib import Path

import pytest

from kiosk.outbox import Outbox
from provisioning import diagnose
from provisioning.__main__ import main
from terminal_config import TERMINAL, write_config  # tests/terminal_config.py

ROOT = Path(__file__).resolve().parent.parent
PASSWORD = "Pl4tf0rm-Passw0rd"
# synthetic personal data, never real: what must not leave the terminal in a bundle
PERSONAL = ("110101199003070011", "11010519491231002X", "110101900307001", "13812345678", "15900001111",
            "张三丰", "欧阳娜娜", "李小龙", "王五六", "北京市东城区测试路1号", "ZHANG SANFENG", PASSWORD)


def write_logs(log_dir: Path) -> None:
    log_dir.mkdir(parents=True)
    now = dt.datetime.now()
    stamp = (now - dt.timedelta(minutes=5)).strftime("%Y-%m-%d %H:%M:%S")
    old = (now - dt.timedelta(hours=72)).strftime("%Y-%m-%d %H:%M:%S")
    (log_dir / "kiosk.log").write_text(
        f"{old},000 INFO kiosk.visit: OLD-LINE-OUTSIDE-THE-WINDOW\n"
        f"{stamp},001 INFO kiosk.visit: card read name=张三丰 id=110101199003070011 mobile 13812345678\n"
        f'{stamp},002 INFO kiosk.platform_link: payload {{"name": "李小龙", "address": "北京市东城区测试路1号", '
        f'"name_en": "ZHANG SANFENG", "mobile": "15900001111"}}\n'
        f"{stamp},003 ERROR kiosk.visit: submit failed 申请人：王五六 身份证 11010519491231002X\n"
        f"Traceback (most recent call last):\n  holder='欧阳娜娜' old card 110101900307001\n"
        f"{stamp},004 WARNING kiosk.govclient: POST https://kiosk:{PASSWORD}@platform.example/v1 failed\n"
        f"{stamp},005 INFO devices.base: receipt_printer: offline -> online\n", encoding="utf-8")
    (log_dir / "kiosk.log.1").write_text(f"{stamp},000 INFO kiosk.visit: 姓名：欧阳娜娜 电话 13812345678\n",
                                         encoding="utf-8")


def test_bundle_has_everything_and_no_personal_data(tmp_path: Path) -> None:
    config = write_config(tmp_path, {"receipt_printer": "emulate = true\n[devices.receipt_printer.emulator]\n"
                                                        f'out_dir = "{tmp_path / "receipts"}"\nrender = false'})
    data = tmp_path / "data"
    write_logs(data / "log")
    box = Outbox(data / "outbox" / "outbox.db", data / "keys" / "outbox.key", TERMINAL)
    payload = {"citizen": {"id_number": "110101199003070011", "name": "张三丰"}}
    first = box.enqueue("application", payload, "a" * 32)
    box.enqueue("application", payload, "b" * 32)
    box.enqueue("rating", {"level": 5}, "c" * 32)
    box.mark_delivered(first, "SQ-1")
    box.close()
    out = tmp_path / "out"
    out.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith("KIOSK")}
    env["KIOSK__PLATFORM__URL"] = f"https://kiosk:{PASSWORD}@platform.example/kiosk-api"
    done = subprocess.run([sys.executable, "-m", "provisioning", "diagnose", "--config", str(config), "--output", str(out)],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
    [bundle] = list(out.iterdir())
    assert bundle.name.startswith(f"kiosk-diagnose-{TERMINAL}-") and bundle.name.endswith("Z.tar.gz")
    assert str(bundle) in done.stdout.splitlines()
    assert stat.S_IMODE(bundle.stat().st_mode) == 0o600

    with tarfile.open(bundle) as tar:
        tar.extractall(tmp_path / "x", filter="data")
    [top] = list((tmp_path / "x").iterdir())
    files = {p.relative_to(top).as_posix(): p.read_bytes() for p in top.rglob("*") if p.is_file()}
    assert set(files) == {"versions.txt", "config.toml", "devices.json", "outbox.json", "logs/kiosk.log",
                          "logs/kiosk.log.1", "MANIFEST.txt"}
    for name, content in files.items():  # the privacy check: grep every file of the bundle
        for secret in PERSONAL:
            assert secret.encode() not in content, f"{secret} found in {name}"
    text = {name: content.decode("utf-8") for name, content in files.items()}

    log = text["logs/kiosk.log"]
    assert "OLD-LINE-OUTSIDE-THE-WINDOW" not in log  # older than --since (48 h)
    assert "110101********0011" in log and "138****5678" in log and "name=张**" in log  # masked, still useful
    assert "receipt_printer: offline -> online" in log and "Traceback" in log
    assert "姓名：欧**" in text["logs/kiosk.log.1"]

    cfg = tomllib.loads(text["config.toml"])  # valid TOML: the effective configuration
    assert cfg["terminal"]["id"] == TERMINAL and cfg["platform"]["key_file"] == "keys/terminal.key"
    assert cfg["platform"]["url"] == "https://kiosk:<removed>@platform.example/kiosk-api"
    assert cfg["devices"]["receipt_printer"]["class"] == "receipt_printer"

    outbox = json.loads(text["outbox.json"])
    assert outbox["by_state_and_kind"] == {"delivered": {"application": 1}, "pending": {"application": 1,
                                                                                        "rating": 1}}
    assert outbox["undelivered"] == 2 and outbox["undelivered_by_kind"] == {"application": 1, "rating": 1}
    assert "SQ-1" not in text["outbox.json"] and "L20" not in text["outbox.json"]  # counts, not receipts

    devices = json.loads(text["devices.json"])["devices"]
    assert [(d["device"], d["passed"], d["printed"]) for d in devices] == [("receipt_printer", True, None)]
    assert "Python" in text["versions.txt"] and "pyserial" in text["versions.txt"]
    assert "Personal data removed" in text["MANIFEST.txt"] and "logs/kiosk.log.1" in text["MANIFEST.txt"]


def cli(*args: str) -> int:
    return main(["diagnose", *args])


def test_bad_arguments_are_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                  monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.startswith("KIOSK"):
            monkeypatch.delenv(name)
    config = write_config(tmp_path, {})
    with pytest.raises(SystemExit) as stop:
        cli("--config", str(config), "--since", "0")
    assert stop.value.code == 2 and "above 0" in capsys.readouterr().err
    assert cli("--config", str(config), "--output", str(tmp_path / "nowhere" / "b.tar.gz"), "--no-devices") == 2
    assert "does not exist" in capsys.readouterr().err
    assert cli("--config", str(tmp_path / "missing.toml")) == 2
    # without devices or logs it still writes a bundle: the configuration and versions help support too
    assert cli("--config", str(config), "--output", str(tmp_path), "--no-devices") == 0
    assert len(list(tmp_path.glob("kiosk-diagnose-*.tar.gz"))) == 1


def test_secret_settings_are_recognised_and_paths_kept() -> None:
    found: set[str] = set()
    redacted = diagnose.redact({"pin_hash": "pbkdf2_sha256$1$" + "ab" * 32, "salt": "0123456789abcdef",
                                "technician_cards": ["pbkdf2_sha256$2$" + "cd" * 32], "api_token": "tok-123456",
                                "key_file": "keys/terminal.key", "pin_pad_timeout_s": 60, "private_key": "-----BEGIN"},
                               found)
    assert redacted == {"pin_hash": "<removed>", "salt": "<removed>", "technician_cards": ["<removed>"],
                        "api_token": "<removed>", "key_file": "keys/terminal.key", "pin_pad_timeout_s": 60,
                        "private_key": "<removed>"}
    assert "tok-123456" in found and "0123456789abcdef" in found
    assert diagnose.Scrubber(found)("sent tok-123456 to 0123456789abcdef") == "sent <removed> to <removed>"
