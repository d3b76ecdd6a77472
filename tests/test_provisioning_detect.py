"""`python -m provisioning detect` as a technician runs it: a subprocess probing the emulators'
real wires (SAM and ESC/POS on pseudo-terminals, a serial QR scanner scanned while detect
listens, an MJPEG camera, the virtual smart-card bench behind the real pcscd, a private
cupsd, SANE's test backend), then `configure` turning its JSON into a config the kiosk's
loader accepts. The emulators are started once for the module."""
from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from config.loader import load_config
from devices.a4_printer.emulator import CupsPdfEmulator
from devices.camera.emulator import StreamingCameraEmulator
from devices.idcard.emulator import SamEmulator
from devices.qr_scanner.serial_emulator import SerialQrEmulator
from devices.receipt_printer.emulator import EscPosEmulator
from devices.scanner.sane_emulator import SaneTestEmulator
from devices.smartcard.emulator import FACTORY
from devices.smartcard.pcscd_rig import PcscdRig
from provisioning import detect
from provisioning.probes import Finding, holders
from provisioning.probes import serial_ports as sp
from provisioning.probes.cameras import pick_document_camera

sys.path.insert(0, str(Path(__file__).parent / "devices"))
from cups_harness import running_emulator

ROOT = Path(__file__).resolve().parent.parent
CODE = "YY2611270000428"
PERSONAL = ("张三", "110101199003070011", "A10000001")  # the virtual card's holder: never in detect's output

if not [*Path("/usr/lib").glob("*/sane/libsane-test.so*"), *Path("/usr/lib").glob("sane/libsane-test.so*")]:
    pytest.fail("SANE's test backend is missing: apt-get install libsane1 (and sane-utils)", pytrace=False)


def environment() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("KIOSK", "SANE_CONFIG_DIR", "PCSCLITE"))}
    env["PYTHONPATH"] = str(ROOT)
    return env


def run(command: str, *args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "provisioning", command, *args], cwd=ROOT, env=environment(), capture_output=True, text=True,
                          timeout=timeout)


def detect_json(*args: str) -> tuple[subprocess.CompletedProcess[str], dict[str, Any]]:
    done = run("detect", "--json", *args)
    assert "Traceback" not in done.stderr, done.stderr
    return done, json.loads(done.stdout)


class _TestCard:
    """A picture for the emulated camera (no photo files needed): a gradient with a frame."""

    def __init__(self, width: int, height: int) -> None:
        x = np.linspace(0, 255, width, dtype=np.uint8)
        self.picture = np.dstack([np.tile(x, (height, 1))] * 3)
        self.picture[:8], self.picture[-8:] = 0, 0

    def render(self) -> np.ndarray:
        return self.picture


@dataclass
class Bench:
    sam: SamEmulator
    sam_port: str
    babbler: SamEmulator
    babbler_port: str
    printer: EscPosEmulator
    printer_port: str
    qr: SerialQrEmulator
    qr_port: str
    camera_url: str
    cups_server: str
    cups_queue: str
    sane_dir: str
    pcsc: PcscdRig
    cups: CupsPdfEmulator


@pytest.fixture(scope="module")
def bench(pcsc_rig: PcscdRig, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Bench]:
    links = tmp_path_factory.mktemp("ports")
    sam, babbler = SamEmulator(link=str(links / "idcard")), SamEmulator()
    printer = EscPosEmulator(link=str(links / "printer"), render=False)
    qr = SerialQrEmulator(link=str(links / "qr"))
    camera = StreamingCameraEmulator(_TestCard(640, 480), fps=5)
    sane = SaneTestEmulator(str(tmp_path_factory.mktemp("sane")))
    started: list[Any] = []
    try:
        ports = []
        for emulator in (sam, babbler, printer, qr, camera):
            ports.append(emulator.start())
            started.append(emulator)
        babbler.babble(True)  # random bytes, never a frame: a device at the wrong speed
        sane_dir = sane.start()
        started.append(sane)
        with running_emulator() as cups:
            yield Bench(sam, ports[0], babbler, ports[1], printer, ports[2], qr, ports[3], ports[4], cups.address,
                        cups.queue, sane_dir, pcsc_rig, cups)
    finally:
        for emulator in reversed(started):
            emulator.stop()


# -- the whole terminal --------------------------------------------------------------------------------
def test_every_emulated_device_is_found_and_configure_makes_a_valid_config(bench: Bench, tmp_path: Path) -> None:
    bench.pcsc.insert(0, FACTORY, card="zhang-san")
    saved = tmp_path / "detected.json"
    args = ["--named-only", "--port", bench.sam_port, "--port", bench.printer_port, "--port", bench.qr_port,
            "--camera", bench.camera_url, "--pcsc-socket", bench.pcsc.socket_path, "--read-cards",
            "--cups-server", bench.cups_server, "--listen", "20", "--output", str(saved)]
    env = {**environment(), "SANE_CONFIG_DIR": bench.sane_dir}  # as a technician's shell may have it
    try:
        process = subprocess.Popen([sys.executable, "-m", "provisioning", "detect", *args], cwd=ROOT, env=env, stdout=subprocess.PIPE,
                                   stderr=subprocess.PIPE, text=True)
        assert process.stderr is not None
        before = []  # detect says when it listens: then the technician scans
        while not (line := process.stderr.readline()).startswith("detect: listening") and line:
            before.append(line)
        assert bench.qr_port in line, "".join(before)
        bench.qr.scan(CODE)
        out, err = process.communicate(timeout=60)
    finally:
        bench.pcsc.remove(0)
    assert process.returncode == 0, out + err
    assert "Traceback" not in err

    # in words: what, where, and the section to configure it
    assert "FOUND" in out and "nothing found" not in out
    assert f'[devices.idcard] driver = "sam_serial", port = "{bench.sam_port}", baudrate = 115200' in out
    assert f'[devices.receipt_printer] driver = "escpos_serial", port = "{bench.printer_port}", baudrate = 9600' in out
    assert f'[devices.qr_scanner] driver = "serial", port = "{bench.qr_port}", baudrate = 9600, suffix = "\\r"' in out
    assert "SAM ID 05.01-20240101-0000012345-0000067890" in out
    assert "read with profile social_security_3" in out
    assert "another smartcard" in out  # vpcd's second slot
    assert "640x480 picture" in out
    assert f'queue = "{bench.cups_queue}", server = "{bench.cups_server}"' in out and "A4 paper listed" in out
    assert 'device = "test:0"' in out
    for secret in (*PERSONAL, CODE):
        assert secret not in out and secret not in err and secret not in saved.read_text(encoding="utf-8")

    # the same as JSON, for configure
    document = json.loads(saved.read_text(encoding="utf-8"))
    assert document["format"] == "kiosk-detect/1" and document["looked_for"] == list(detect.KINDS)
    assert document["problems"] == []
    found = {(d["class"], d["driver"]): d for d in document["detected"]}
    assert set(found) == {("idcard", "sam_serial"), ("receipt_printer", "escpos_serial"), ("qr_scanner", "serial"),
                          ("smartcard", "pcsc"), ("camera", "opencv"), ("a4_printer", "cups"), ("scanner", "sane")}
    assert all(d["confidence"] == "certain" and d["evidence"] for d in document["detected"])
    assert found[("qr_scanner", "serial")]["params"] == {"port": bench.qr_port, "baudrate": 9600, "suffix": "\r"}
    assert found[("camera", "opencv")]["facts"] == {"width": 640, "height": 480}
    readers = [d["params"]["reader"] for d in document["detected"] if d["class"] == "smartcard"]
    assert readers == bench.pcsc.reader_names()
    assert {p["port"]: p["state"] for p in document["ports"]} == {
        bench.sam_port: "idcard", bench.printer_port: "receipt_printer", bench.qr_port: "qr_scanner"}

    config_file = tmp_path / "etc" / "terminal.toml"
    done = run("configure", "--from", str(saved), "--output", str(config_file), "--terminal-id", "ZJ-HZ-0012",
               "--location", "测试网点一楼大厅")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "1 more smartcard found, not configured" in done.stdout
    cfg = load_config(config_file, environ={})
    assert (cfg.terminal.id, cfg.terminal.location) == ("ZJ-HZ-0012", "测试网点一楼大厅")
    params = {name: (dev.driver, dev.enabled, dev.driver_params()) for name, dev in cfg.devices.items()}
    assert params["idcard"][2]["port"] == bench.sam_port
    assert params["receipt_printer"][2]["port"] == bench.printer_port
    assert params["qr_scanner"][2]["port"] == bench.qr_port and params["qr_scanner"][2]["suffix"] == "\r"
    assert params["smartcard"][2]["reader"] == readers[0]
    assert params["smartcard"][2]["pcsc_socket"] == bench.pcsc.socket_path
    assert params["camera"][2]["source"] == bench.camera_url
    assert params["a4_printer"][2]["server"] == bench.cups_server
    assert params["scanner"][0] == "sane" and params["scanner"][2]["device"] == "test:0"
    assert params["scanner"][2]["config_dir"] == bench.sane_dir
    assert all(enabled for _, enabled, _ in params.values())
    assert f"also found, not configured: reader '{readers[1]}'" in config_file.read_text(encoding="utf-8")


def test_a_port_that_answers_garbage_is_reported_and_never_configured(bench: Bench, tmp_path: Path) -> None:
    done, document = detect_json("--only", "serial", "--named-only", "--port", bench.babbler_port,
                                 "--probe-timeout", "0.1", "--output", str(tmp_path / "detected.json"))
    assert done.returncode == 3, done.stderr  # a port the technician named is no device
    assert f"not recognised as a device: {bench.babbler_port}" in done.stderr
    assert document["detected"] == []
    [port] = document["ports"]
    assert port["state"] == "garbage" and port["named"]
    assert port["detail"].startswith("answers, but not ESC/POS or SAM: ") and "bytes of garbage (" in port["detail"]

    config_file = tmp_path / "terminal.toml"
    made = run("configure", "--from", str(tmp_path / "detected.json"), "--output", str(config_file))
    assert made.returncode == 0, made.stderr
    cfg = load_config(config_file, environ={})
    assert not cfg.devices["idcard"].enabled and not cfg.devices["receipt_printer"].enabled
    assert bench.babbler_port not in config_file.read_text(encoding="utf-8")
    assert "not found by detect on" in config_file.read_text(encoding="utf-8")
    assert cfg.devices["camera"].enabled  # detect did not look at cameras: left as it was


def test_a_port_another_program_holds_is_named_and_not_touched(bench: Bench) -> None:
    code = "import sys, time, serial; p = serial.Serial(sys.argv[1]); print('open', flush=True); time.sleep(60)"
    holder = subprocess.Popen([sys.executable, "-c", code, bench.printer_port],
                              stdout=subprocess.PIPE, text=True, env=environment())
    try:
        assert holder.stdout is not None and holder.stdout.readline() == "open\n"
        queries = bench.printer.counters.queries
        done, document = detect_json("--only", "serial", "--named-only", "--port", bench.printer_port,
                                     "--port", bench.qr_port, "--probe-timeout", "0.1")
    finally:
        holder.kill()
        holder.wait()
    assert done.returncode == 3
    ports = {p["port"]: p for p in document["ports"]}
    held = ports[bench.printer_port]
    assert held["state"] == "in_use" and f"PID {holder.pid} (" in held["detail"]
    assert "systemctl stop kiosk" in held["detail"]
    assert bench.printer.counters.queries == queries  # not a byte was sent to it
    silent = ports[bench.qr_port]
    assert silent["state"] == "silent" and "perhaps a QR scanner" in silent["detail"] and "--listen" in silent["detail"]
    assert any(p["where"] == bench.printer_port for p in document["problems"])


def test_an_unknown_port_is_exit_2_naming_it(tmp_path: Path) -> None:
    missing = str(tmp_path / "ttyUSB9")
    done = run("detect", "--named-only", "--port", missing)
    assert done.returncode == 2 and done.stdout == ""
    assert f"--port {missing} does not exist" in done.stderr and "Traceback" not in done.stderr
    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        address = f"socket://127.0.0.1:{s.getsockname()[1]}"
    done = run("detect", "--named-only", "--port", address)
    assert done.returncode == 2 and f"--port {address} cannot be reached" in done.stderr, done.stderr
    assert sp.not_a_port(str(ROOT / "README.md")) == "is not a serial device (not a character device file)"
    assert "pyserial" in (sp.not_a_port("gopher://x") or "")


def test_no_pcscd_and_no_cups_are_lines_not_crashes(tmp_path: Path) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        dead = f"127.0.0.1:{s.getsockname()[1]}"
    done = run("detect", "--only", "pcsc", "--only", "cups", "--pcsc-socket", str(tmp_path / "pcscd.comm"),
               "--cups-server", dead, "--output", str(tmp_path / "detected.json"))
    assert done.returncode == 0 and "Traceback" not in done.stderr, done.stderr
    assert "nothing found" in done.stdout and "pcscd is not running" in done.stdout  # in words...
    document = json.loads((tmp_path / "detected.json").read_text(encoding="utf-8"))  # ... and for configure
    assert document["detected"] == [] and document["looked_for"] == ["pcsc", "cups"]
    messages = {p["kind"]: p["message"] for p in document["problems"]}
    assert messages["pcsc"].startswith("pcscd is not running or not reachable at ") and "apt-get install pcscd" in \
        messages["pcsc"]
    assert messages["cups"].startswith(f"CUPS is not running on {dead}")


def test_a_stopped_queue_is_found_with_what_to_do(bench: Bench) -> None:
    bench.cups.stop_queue("paper jam (test)")
    try:
        done, document = detect_json("--only", "cups", "--cups-server", bench.cups_server)
    finally:
        bench.cups.resume()
    assert done.returncode == 0, done.stderr
    [queue] = document["detected"]
    assert queue["params"] == {"queue": bench.cups_queue, "server": bench.cups_server}
    assert queue["facts"]["state"] == "stopped" and queue["facts"]["a4"]
    [problem] = document["problems"]
    assert "paper jam (test)" in problem["message"] and f"cupsenable {bench.cups_queue}" in problem["message"]


# -- the probes, in this process ------------------------------------------------------------------------
def test_a_printer_out_of_paper_is_still_a_printer_and_says_so(bench: Bench) -> None:
    bench.printer.paper_out()
    try:
        report, finding = sp.probe_port(bench.printer_port, True, 0.2)
    finally:
        bench.printer.paper_ok()
    assert report.state == "receipt_printer" and finding is not None
    assert "OUT OF PAPER" in finding.evidence and finding.facts["paper"] == "out"


def test_a_reader_behind_a_serial_device_server() -> None:
    with SamEmulator(tcp_port=0) as reader:
        report, finding = sp.probe_port(f"socket://127.0.0.1:{reader.tcp_port}", True, 0.1)
    assert report.state == "idcard" and finding is not None and finding.device_class == "idcard"
    assert finding.params == {"port": f"socket://127.0.0.1:{reader.tcp_port}", "baudrate": 115200}


def test_the_emulator_on_the_far_side_of_a_pty_is_not_a_user(bench: Bench) -> None:
    assert holders([bench.sam_port, bench.qr_port]) == {bench.sam_port: [], bench.qr_port: []}


@pytest.mark.parametrize(("data", "expected"), [
    (b"YY2611270000428\r", (15, "\r")),
    (b"https://zwfw.example.gov.cn/x\r\n", (29, "\r\n")),
    ("电子证照".encode("gb18030") + b"\n", (4, "\n")),
    (b"\xff\xfe\x80\r", None),  # bytes that are no text
    (b"two\rlines\r", None),
    (b"no suffix", None),
])
def test_what_counts_as_a_scanned_code(data: bytes, expected: tuple[int, str] | None) -> None:
    assert sp.as_code_line(data) == expected


def test_the_biggest_of_two_cameras_is_suggested_as_the_document_camera() -> None:
    face = Finding("camera", "camera", "opencv", {"source": "/dev/video0"}, "/dev/video0", "640x480",
                   facts={"width": 640, "height": 480})
    desk = Finding("camera", "camera", "opencv", {"source": "/dev/video2"}, "/dev/video2", "2592x1944",
                   facts={"width": 2592, "height": 1944})
    pick_document_camera([face, desk])
    assert (face.device_class, desk.device_class, desk.driver, desk.confidence) == (
        "camera", "scanner", "document_camera", "likely")
    same = [Finding("camera", "camera", "opencv", {"source": i}, str(i), "", facts={"width": 640, "height": 480})
            for i in range(2)]
    pick_document_camera(same)
    assert [f.device_class for f in same] == ["camera", "camera"]


def test_the_help_documents_the_exit_codes_and_the_json() -> None:
    import argparse

    parser = argparse.ArgumentParser()
    detect.register(parser.add_subparsers())
    text = parser._subparsers._group_actions[0].choices["detect"].format_help()  # type: ignore[union-attr]
    assert "exit codes:" in text and '"confidence": "certain" | "likely"' in text and "--listen" in text
