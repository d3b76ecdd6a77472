"""The real SAM driver against the emulator's socket:// transport (a reader behind a
serial-device server), plus the faults both transports share.

No wall-clock assertions: conditions are awaited with generous deadlines.
"""
from __future__ import annotations

import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Iterator

import pytest

from devices.base import DeviceDisconnected, DeviceEvent, DeviceProtocolError, DeviceState
from devices.idcard import protocol as p
from devices.idcard.driver import SamSerialReader
from devices.idcard.emulator import CARDS_DIR, SamEmulator, load_cards
from devices.supervisor import Supervisor
from waiting import wait_until

CARD_IDS = sorted(load_cards(CARDS_DIR))
ROOT = Path(__file__).resolve().parents[2]
COMPARED = ("card_type", "name", "gender_code", "nation_code", "birth_date", "address", "id_number", "issuer",
            "valid_from", "valid_to", "appended_address", "pass_number", "issue_count", "english_name",
            "nationality_code", "card_version", "issuer_code", "renewal_count", "previous_number_link", "photo_wlt")


@pytest.fixture
def tcp_emulator() -> Iterator[SamEmulator]:
    emu = SamEmulator(tcp_port=0)
    emu.start()
    yield emu
    emu.stop()


def make_reader(port: str, **kwargs: Any) -> SamSerialReader:
    params: dict[str, Any] = dict(port=port, timeout_s=1.0, photo_decoder="emulator")
    params.update(kwargs)
    return SamSerialReader("idcard", **params)


def test_start_returns_a_loopback_socket_url(tcp_emulator: SamEmulator) -> None:
    assert tcp_emulator.port == f"socket://127.0.0.1:{tcp_emulator.tcp_port}"
    assert tcp_emulator.tcp_port and tcp_emulator.tcp_port > 0
    with socket.create_connection(("127.0.0.1", tcp_emulator.tcp_port), timeout=2):
        pass


@pytest.mark.parametrize("card_id", CARD_IDS)
def test_driver_reads_every_card_over_socket_url(tcp_emulator: SamEmulator, card_id: str) -> None:
    reader = make_reader(str(tcp_emulator.port))
    reader.open()
    try:
        tcp_emulator.place_card(card_id)
        identity = reader.read_card()
        expected = tcp_emulator.card(card_id)
        for name in COMPARED:
            assert getattr(identity, name) == getattr(expected, name), name
        assert identity.photo_bmp is not None and identity.photo_bmp[:2] == b"BM"
    finally:
        reader.close()


def test_paced_read_over_tcp() -> None:
    with SamEmulator(tcp_port=0, pace_baud=115200) as emu:
        reader = make_reader(str(emu.port))
        reader.open()
        try:
            emu.place_card("resident-rare-name")
            assert reader.read_card().name == emu.card("resident-rare-name").name
        finally:
            reader.close()


def test_line_faults_over_tcp(tcp_emulator: SamEmulator) -> None:
    reader = make_reader(str(tcp_emulator.port))
    reader.open()
    try:
        tcp_emulator.place_card("resident")
        tcp_emulator.send_garbage()
        tcp_emulator.corrupt_next_checksum()
        assert reader.read_card().id_number == tcp_emulator.card("resident").id_number
        assert tcp_emulator.count(p.FIND_CARD) == 2  # the corrupted answer was asked again
    finally:
        reader.close()


def test_supervisor_takes_it_offline_on_unplug_and_online_after_replug(tcp_emulator: SamEmulator) -> None:
    url = str(tcp_emulator.port)
    reader = make_reader(url)
    events: list[DeviceEvent] = []
    reader.subscribe(events.append)
    supervisor = Supervisor([reader], backoff_min=0.05, backoff_max=0.2)
    supervisor.round()
    assert reader.status().device is DeviceState.ONLINE
    tcp_emulator.place_card("resident")
    wait_until(lambda: [e for e in events if e.kind == "card_placed"], step=supervisor.round)

    tcp_emulator.unplug()
    supervisor.round()
    assert reader.status().device is DeviceState.OFFLINE and url in reader.status().fault
    assert [e.data["reason"] for e in events if e.kind == "card_removed"] == ["closed"]
    with pytest.raises(ConnectionRefusedError):  # a dead device server refuses connections
        socket.create_connection(("127.0.0.1", tcp_emulator.tcp_port), timeout=2).close()
    for _ in range(3):
        time.sleep(0.06)
        supervisor.round()
        assert reader.status().device is DeviceState.OFFLINE
    assert "Connection refused" in reader.status().fault

    port_before = tcp_emulator.tcp_port
    assert tcp_emulator.replug() == url and tcp_emulator.tcp_port == port_before  # same address
    wait_until(lambda: reader.status().device is DeviceState.ONLINE, step=supervisor.round)
    wait_until(lambda: len([e for e in events if e.kind == "card_placed"]) == 2, step=supervisor.round)
    supervisor.stop()


def test_a_new_connection_replaces_the_old_one(tcp_emulator: SamEmulator) -> None:
    first = make_reader(str(tcp_emulator.port))
    second = make_reader(str(tcp_emulator.port))
    first.open()
    second.open()
    try:
        tcp_emulator.place_card("resident")
        assert second.read_card().name == tcp_emulator.card("resident").name
        with pytest.raises(DeviceDisconnected):
            first.poll()
    finally:
        first.close()
        second.close()


@pytest.mark.parametrize("transport", ["pty", "tcp"])
def test_a_babbling_line_is_a_protocol_error_not_a_timeout(transport: str, tmp_path: Path) -> None:
    options: dict[str, Any] = {"tcp_port": 0} if transport == "tcp" else {"link": str(tmp_path / "idcard")}
    with SamEmulator(**options) as emu:
        emu.babble()
        reader = make_reader(emu.link or str(emu.port), timeout_s=0.3)
        with pytest.raises(DeviceProtocolError, match="line noise"):
            reader.open()
        emu.babble(False)
        reader.open()  # the same line answers properly again
        reader.close()


def test_link_and_tcp_port_are_exclusive(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="socket://"):
        SamEmulator(tcp_port=0, link=str(tmp_path / "idcard"))


def test_emulator_runs_standalone_on_tcp() -> None:
    proc = subprocess.Popen(
        [sys.executable, "-m", "devices.idcard.emulator", "--tcp", "0", "--card", "hmt-permit"],
        cwd=ROOT, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
    )
    try:
        assert proc.stdout is not None and proc.stdin is not None
        first = proc.stdout.readline().split()
        assert first[0] == "port" and first[1].startswith("socket://127.0.0.1:")
        reader = SamSerialReader("idcard", port=first[1], timeout_s=2.0)
        reader.open()
        try:
            assert reader.read_card().pass_number == "H12345678"
        finally:
            reader.close()
        proc.stdin.write("quit\n")
        proc.stdin.flush()
        assert proc.wait(timeout=10) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
