"""`python -m provisioning configure` as a technician runs it (a subprocess), from detect's JSON
written by hand here in the documented structure (tests/test_provisioning_detect.py runs
configure on the JSON of a real detect run): what it keeps, what it writes, what it refuses."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import tomllib
from pathlib import Path
from typing import Any

from config.loader import load_config

ROOT = Path(__file__).resolve().parent.parent
DAY = "2026-11-27"

EXISTING = """\
# a technician's own notes
[terminal]
id = "ZJ-HZ-0003"
location = "西湖区政务服务中心"

[ui]
fullscreen = false

[platform]
url = "https://zwfw.example.gov.cn/kiosk-api"

[face]
enabled = false

[devices.idcard]
port = "/dev/ttyUSB3"

[devices.receipt_printer]
encoding = "gbk"
paper_width = 58
emulate = true

[devices.spare_printer]
class = "receipt_printer"
driver = "escpos_serial"
port = "/dev/ttyS2"
"""


def configure(*args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("KIOSK")}
    env["PYTHONPATH"] = str(ROOT)
    done = subprocess.run([sys.executable, "-m", "provisioning", "configure", *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)
    assert "Traceback" not in done.stderr, done.stderr
    return done


def device(device_class: str, driver: str, where: str, **params: Any) -> dict[str, Any]:
    return {"class": device_class, "driver": driver, "params": params, "where": where,
            "evidence": f"answered as a {device_class}", "confidence": "certain", "facts": {}}


def detected(path: Path, *entries: dict[str, Any], looked_for: tuple[str, ...] = ("serial",)) -> str:
    path.write_text(json.dumps({"format": "kiosk-detect/1", "detected_at": f"{DAY}T10:00:00+08:00", "host": "kiosk-7",
                                "looked_for": list(looked_for), "detected": list(entries), "problems": [],
                                "ports": []}, ensure_ascii=False), encoding="utf-8")
    return str(path)


def test_detected_devices_are_written_and_what_configure_does_not_own_is_kept(tmp_path: Path) -> None:
    target = tmp_path / "terminal.toml"
    target.write_text(EXISTING, encoding="utf-8")
    source = detected(tmp_path / "d.json",
                      device("idcard", "sam_serial", "/dev/ttyUSB0", port="/dev/serial/by-id/usb-SAM-if00",
                             baudrate=115200),
                      device("receipt_printer", "escpos_serial", "/dev/ttyS1", port="/dev/ttyS1", baudrate=19200))
    done = configure("--from", source, "--output", str(target), "--terminal-id", "ZJ-HZ-0012")
    assert done.returncode == 0, done.stderr
    [backup] = list(tmp_path.glob("terminal.toml.bak-*"))
    assert backup.read_text(encoding="utf-8") == EXISTING
    assert f"the previous file is kept as {backup}" in done.stdout
    assert "qr_scanner       not found: enabled = false" in done.stdout

    cfg = load_config(target, environ={})
    assert (cfg.terminal.id, cfg.terminal.location) == ("ZJ-HZ-0012", "西湖区政务服务中心")
    assert cfg.ui.fullscreen is False and cfg.face.enabled is False
    assert cfg.platform.url == "https://zwfw.example.gov.cn/kiosk-api"
    idcard, printer = cfg.devices["idcard"].driver_params(), cfg.devices["receipt_printer"]
    assert idcard["port"] == "/dev/serial/by-id/usb-SAM-if00"
    assert printer.driver_params()["port"] == "/dev/ttyS1" and printer.driver_params()["baudrate"] == 19200
    assert printer.driver_params()["encoding"] == "gbk" and printer.driver_params()["paper_width"] == 58  # kept
    assert printer.emulate is False and printer.enabled  # a device found is a real one
    assert cfg.devices["spare_printer"].driver_params()["port"] == "/dev/ttyS2"
    assert cfg.devices["qr_scanner"].enabled is False
    assert cfg.devices["camera"].enabled  # cameras were not looked for: left alone

    text = target.read_text(encoding="utf-8")
    written = tomllib.loads(text)
    assert set(written["devices"]) == {"idcard", "receipt_printer", "qr_scanner", "spare_printer"}
    assert written["devices"]["qr_scanner"] == {"enabled": False}
    assert f"# not found by detect on {DAY}\n[devices.qr_scanner]" in text
    assert f"# found by detect on {DAY}: /dev/ttyS1: answered as a receipt_printer (certain)" in text
    assert "driver" not in written["devices"]["idcard"] and "class" not in written["devices"]["idcard"]
    assert oct(target.stat().st_mode & 0o777) == "0o644"
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []  # no temporary file left


def test_of_two_devices_of_one_class_the_first_is_configured(tmp_path: Path) -> None:
    target = tmp_path / "etc" / "kiosk" / "terminal.toml"  # folders made as needed
    source = detected(tmp_path / "d.json",
                      device("smartcard", "pcsc", "reader 'ACS ACR39U 00 00'", reader="ACS ACR39U 00 00"),
                      device("smartcard", "pcsc", "reader 'ACS ACR39U 01 00'", reader="ACS ACR39U 01 00"),
                      looked_for=("pcsc",))
    done = configure("--from", source, "--output", str(target))
    assert done.returncode == 0, done.stderr
    assert "1 more smartcard found, not configured" in done.stdout and "reader 'ACS ACR39U 01 00'" in done.stdout
    assert "backup" not in done.stdout and "previous file" not in done.stdout
    cfg = load_config(target, environ={})
    assert cfg.devices["smartcard"].driver_params()["reader"] == "ACS ACR39U 00 00"
    text = target.read_text(encoding="utf-8")
    assert ("# also found, not configured: reader 'ACS ACR39U 01 00': driver = \"pcsc\", "
            "reader = \"ACS ACR39U 01 00\"") in text
    assert set(tomllib.loads(text)["devices"]) == {"smartcard"}  # only pcsc was looked at


def test_a_result_the_loader_refuses_is_exit_2_and_the_old_file_stays(tmp_path: Path) -> None:
    target = tmp_path / "terminal.toml"
    target.write_text(EXISTING, encoding="utf-8")
    source = detected(tmp_path / "d.json", device("camera", "opencv", "/dev/video0", source="/dev/video0",
                                                  rotation=45), looked_for=("camera",))
    done = configure("--from", source, "--output", str(target))
    assert done.returncode == 2 and done.stdout == ""
    assert f"configuration error in {target}: key 'devices.camera.rotation'" in done.stderr, done.stderr
    assert f"nothing was written; {target} is unchanged" in done.stderr
    assert target.read_text(encoding="utf-8") == EXISTING
    assert sorted(p.name for p in tmp_path.iterdir()) == ["d.json", "terminal.toml"]  # no backup, no temp file


def test_dry_run_prints_a_valid_config_and_writes_nothing(tmp_path: Path) -> None:
    target = tmp_path / "terminal.toml"
    source = detected(tmp_path / "d.json",
                      device("qr_scanner", "serial", "/dev/ttyACM0", port="/dev/ttyACM0", baudrate=9600,
                             suffix="\r\n"),
                      device("scanner", "document_camera", "/dev/video2", source="/dev/v4l/by-id/usb-Doc-video-index0"),
                      looked_for=("serial", "camera"))
    done = configure("--from", source, "--output", str(target), "--dry-run", "--location", "滨江区 3 号窗口",
                     "--platform-url", "https://zwfw.example.gov.cn/kiosk-api")
    assert done.returncode == 0, done.stderr
    assert not target.exists()
    assert "is valid; nothing was written" in done.stderr
    printed = tomllib.loads(done.stdout)
    assert printed["terminal"] == {"location": "滨江区 3 号窗口"}
    assert printed["platform"] == {"url": "https://zwfw.example.gov.cn/kiosk-api"}
    assert printed["devices"]["qr_scanner"]["suffix"] == "\r\n"
    assert printed["devices"]["scanner"] == {"source": "/dev/v4l/by-id/usb-Doc-video-index0"}
    assert printed["devices"]["camera"] == {"enabled": False} and printed["devices"]["idcard"] == {"enabled": False}
    assert "a4_printer" not in printed["devices"]


def test_bad_input_is_exit_2_in_words(tmp_path: Path) -> None:
    target = tmp_path / "terminal.toml"
    missing = configure("--from", str(tmp_path / "nope.json"), "--output", str(target))
    assert missing.returncode == 2 and "does not exist: run `python -m provisioning detect --output" in missing.stderr
    (tmp_path / "broken.json").write_text('{"detected": [', encoding="utf-8")
    broken = configure("--from", str(tmp_path / "broken.json"), "--output", str(target))
    assert broken.returncode == 2 and "is not valid JSON" in broken.stderr
    (tmp_path / "other.json").write_text('{"detected": [{"class": "camera"}]}', encoding="utf-8")
    other = configure("--from", str(tmp_path / "other.json"), "--output", str(target))
    assert other.returncode == 2 and "is not detect's output: entry 0" in other.stderr
    assert not target.exists()


def test_an_existing_file_that_is_not_toml_is_left_alone(tmp_path: Path) -> None:
    target = tmp_path / "terminal.toml"
    target.write_text("[ui\nfullscreen = false\n", encoding="utf-8")
    done = configure("--from", detected(tmp_path / "d.json"), "--output", str(target))
    assert done.returncode == 2 and f"the existing {target} is not valid TOML" in done.stderr
    assert target.read_text(encoding="utf-8") == "[ui\nfullscreen = false\n"


def test_a_place_that_cannot_be_written_is_exit_3(tmp_path: Path) -> None:
    (tmp_path / "etc").write_text("a file where a folder should be", encoding="utf-8")
    done = configure("--from", detected(tmp_path / "d.json"), "--output", str(tmp_path / "etc" / "terminal.toml"))
    assert done.returncode == 3 and "cannot write" in done.stderr, done.stderr
