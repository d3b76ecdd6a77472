"""`python -m provisioning selftest` as a technician runs it: emulated devices (configured with
`emulate = true`, or `--emulated`), a port that does not exist, bad names, and a running kiosk
that holds its devices."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from devices.receipt_printer.emulator import EscPosEmulator
from provisioning.__main__ import main
from terminal_config import TERMINAL, write_config  # tests/terminal_config.py

ROOT = Path(__file__).resolve().parent.parent


def run(*args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("KIOSK")}
    return subprocess.run([sys.executable, "-m", "provisioning", "selftest", *args], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=120)


def cli(*args: str) -> int:
    return main(["selftest", *args])


@pytest.fixture(autouse=True)
def _no_kiosk_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.startswith("KIOSK"):
            monkeypatch.delenv(name)


def test_emulated_devices_pass_print_and_a_missing_port_is_exit_3(tmp_path: Path) -> None:
    receipts = tmp_path / "receipts"
    config = write_config(tmp_path, {
        "idcard": "emulate = true",
        "receipt_printer": f'emulate = true\n[devices.receipt_printer.emulator]\nout_dir = "{receipts}"',
        "qr_scanner": f'port = "{tmp_path / "no-such-tty"}"'})
    done = run("--config", str(config))
    assert done.returncode == 3, done.stdout + done.stderr
    assert "Traceback" not in done.stderr
    rows = {line.split()[0]: line.split() for line in done.stdout.splitlines() if line and not line.startswith(" ")}
    assert rows["idcard"][3] == "pass" and rows["receipt_printer"][3] == "pass" and rows["qr_scanner"][3] == "FAIL"
    assert "test page printed" in done.stdout and f"打印测试 {TERMINAL}" in done.stdout
    assert "no-such-tty" in done.stdout and "FAILED: qr_scanner" in done.stdout
    pngs = list(receipts.glob("*.png"))
    assert len(pngs) == 1 and str(pngs[0]) in done.stdout  # the emulated receipt, drawn for a person to look at
    assert "selftest: qr_scanner: FAILED" in done.stderr  # progress while it runs


def test_emulated_flag_json_and_all_passed_is_exit_0(tmp_path: Path) -> None:
    # the configured port does not exist: --emulated points the real driver at the emulator instead
    config = write_config(tmp_path, {
        "receipt_printer": (f'port = "{tmp_path / "no-such-tty"}"\n[devices.receipt_printer.emulator]\n'
                            f'out_dir = "{tmp_path / "receipts"}"\nrender = false')})
    done = run("--config", str(config), "--emulated", "--json", "--no-print")
    assert done.returncode == 0, done.stdout + done.stderr
    report = json.loads(done.stdout)
    assert report["passed"] is True and report["terminal"] == TERMINAL
    [device] = report["devices"]
    assert device["device"] == "receipt_printer" and device["passed"] and device["printed"] is None
    assert {r["check"] for r in device["results"]} >= {"port opens", "paper"}


def test_bad_names_and_config_are_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = write_config(tmp_path, {"receipt_printer": 'port = "/dev/ttyS0"'})
    assert cli("--config", str(config), "--device", "printer") == 2
    err = capsys.readouterr().err
    assert "no device named 'printer'" in err and "configured: idcard, smartcard, camera, receipt_printer" in err
    assert cli("--config", str(tmp_path / "missing.toml")) == 2
    assert "does not exist" in capsys.readouterr().err
    nothing = write_config(tmp_path, {})
    assert cli("--config", str(nothing)) == 2
    assert "no enabled devices" in capsys.readouterr().err


def test_a_port_held_by_the_running_kiosk_says_stop_the_kiosk(tmp_path: Path,
                                                              capsys: pytest.CaptureFixture[str]) -> None:
    emu = EscPosEmulator(link=str(tmp_path / "printer.tty"), render=False)
    port = emu.start()
    log_file = tmp_path / "data" / "log" / "kiosk.log"
    log_file.parent.mkdir(parents=True)
    log_file.write_text("")
    # a stand-in for the kiosk: it holds its log file and the printer's port open
    holder = ("import sys, time; a = open(sys.argv[1]); b = open(sys.argv[2], 'rb', buffering=0); "
              "print('ready', flush=True); time.sleep(60)")
    kiosk = subprocess.Popen([sys.executable, "-c", holder, str(log_file), port], stdout=subprocess.PIPE, text=True)
    try:
        assert kiosk.stdout is not None and kiosk.stdout.readline().strip() == "ready"
        config = write_config(tmp_path, {"receipt_printer": f'port = "{port}"'})
        assert cli("--config", str(config)) == 3
        out, err = capsys.readouterr()
        assert f"process {kiosk.pid}" in out and "stop the kiosk first" in out
        assert "the kiosk is running" in err
        assert emu.receipts(timeout=0.2) == []  # its devices were not touched
    finally:
        kiosk.kill()
        kiosk.wait()
        emu.stop()
