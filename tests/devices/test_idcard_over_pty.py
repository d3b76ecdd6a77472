"""The real SAM serial driver against the emulator over a real pseudo-terminal.

No wall-clock assertions: conditions are awaited with generous deadlines, so the tests
hold on a loaded 2-core machine.
"""
from __future__ import annotations

import datetime as dt
import logging
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Iterator

import pytest

from devices.base import DeviceDisconnected, DeviceEvent, DeviceProtocolError, DeviceState, DeviceTimeout, MediaState
from devices.idcard import protocol as p
from devices.idcard.driver import SamSerialReader
from devices.idcard.emulator import CARDS_DIR, SamEmulator, load_cards
from devices.supervisor import Supervisor
from waiting import wait_until

TODAY = dt.date(2026, 6, 1)
CARD_IDS = sorted(load_cards(CARDS_DIR))
ROOT = Path(__file__).resolve().parents[2]
COMPARED = ("card_type", "name", "gender_code", "gender", "nation_code", "nation", "birth_date", "address",
            "id_number", "issuer", "valid_from", "valid_to", "appended_address", "pass_number", "issue_count",
            "english_name", "nationality_code", "card_version", "issuer_code", "renewal_count",
            "previous_number_link", "photo_wlt")


class Events:
    def __init__(self, device: SamSerialReader) -> None:
        self.items: list[DeviceEvent] = []
        device.subscribe(self.items.append)

    def kinds(self, *kinds: str) -> list[DeviceEvent]:
        return [e for e in self.items if e.kind in kinds]

    def cards(self) -> list[tuple[str, Any]]:
        """("placed"|"removed", identity-or-code) in order."""
        out = []
        for e in self.kinds("card_placed", "card_removed"):
            if e.kind == "card_removed":
                out.append(("removed", e.data["reason"]))
            else:
                out.append(("placed", e.data.get("code") or e.data["identity"].id_number))
        return out


@pytest.fixture
def emulator(tmp_path: Path) -> Iterator[SamEmulator]:
    emu = SamEmulator(link=str(tmp_path / "dev" / "idcard"))
    emu.start()
    yield emu
    emu.stop()


def make_reader(emulator: SamEmulator, **kwargs: Any) -> SamSerialReader:
    params: dict[str, Any] = dict(port=emulator.link, timeout_s=1.0, photo_decoder="emulator", today=lambda: TODAY)
    params.update(kwargs)
    return SamSerialReader("idcard", **params)


@pytest.fixture
def reader(emulator: SamEmulator) -> Iterator[SamSerialReader]:
    r = make_reader(emulator)
    r.open()
    yield r
    r.close()


# -- reading ---------------------------------------------------------------------------------
@pytest.mark.parametrize("card_id", CARD_IDS)
def test_reads_every_card_type(emulator: SamEmulator, reader: SamSerialReader, card_id: str) -> None:
    emulator.place_card(card_id)
    identity = reader.read_card()
    expected = emulator.card(card_id)
    for name in COMPARED:
        assert getattr(identity, name) == getattr(expected, name), name
    assert identity.photo_note == "decoded" and identity.photo_bmp is not None
    assert identity.photo_bmp[:2] == b"BM" and len(identity.photo_bmp) == 38862


def test_read_with_fingerprint(emulator: SamEmulator, reader: SamSerialReader) -> None:
    emulator.place_card("resident-long-term")
    identity = reader.read_card(with_fingerprint=True)
    assert identity.fingerprint == emulator.card("resident-long-term").fingerprint
    assert len(identity.fingerprint) == 1024 and emulator.count(p.READ_TEXT_PHOTO_FINGERPRINT) == 1


def test_without_a_decoder_the_photo_is_unavailable_not_faked(emulator: SamEmulator) -> None:
    r = make_reader(emulator, photo_decoder="")
    r.open()
    try:
        emulator.place_card("resident")
        identity = r.read_card()
        assert identity.photo_bmp is None and identity.photo_note == "unavailable"
        assert len(identity.photo_wlt) == 1024
    finally:
        r.close()


def test_read_with_no_card_raises_no_card(reader: SamSerialReader) -> None:
    with pytest.raises(p.NoCardError):
        reader.read_card()


def test_paced_like_a_real_115200_line(tmp_path: Path) -> None:
    with SamEmulator(pace_baud=115200, link=str(tmp_path / "paced")) as emu:
        r = make_reader(emu)
        r.open()
        try:
            emu.place_card("resident-rare-name")
            assert r.read_card().name == emu.card("resident-rare-name").name
        finally:
            r.close()


# -- events from poll ------------------------------------------------------------------------
def test_place_and_remove_events_with_one_read_per_placement(emulator: SamEmulator, reader: SamSerialReader) -> None:
    events = Events(reader)
    emulator.place_card("resident")
    wait_until(lambda: events.kinds("card_placed"), step=reader.poll)
    (placed,) = events.kinds("card_placed")
    assert "error" not in placed.data
    assert placed.data["identity"].id_number == emulator.card("resident").id_number
    assert reader.status().media is MediaState.PRESENT
    for _ in range(5):  # the card stays: no second read, no new events
        reader.poll()
    assert emulator.count(p.READ_TEXT_PHOTO) == 1 and len(events.kinds("card_placed")) == 1

    emulator.remove_card()
    wait_until(lambda: events.kinds("card_removed"), step=reader.poll)
    assert reader.status().media is MediaState.ABSENT
    emulator.place_card("resident")
    wait_until(lambda: len(events.kinds("card_placed")) == 2, step=reader.poll)
    assert emulator.count(p.READ_TEXT_PHOTO) == 2
    assert [kind for kind, _ in events.cards()] == ["placed", "removed", "placed"]


def test_card_swapped_between_polls(emulator: SamEmulator, reader: SamSerialReader) -> None:
    events = Events(reader)
    emulator.place_card("resident")
    wait_until(lambda: events.kinds("card_placed"), step=reader.poll)
    emulator.place_card("hmt-permit")
    wait_until(lambda: len(events.kinds("card_placed")) == 2, step=reader.poll)
    assert events.cards() == [
        ("placed", emulator.card("resident").id_number),
        ("removed", "removed"),
        ("placed", emulator.card("hmt-permit").id_number),
    ]


def test_failed_read_is_reported_once(emulator: SamEmulator, reader: SamSerialReader) -> None:
    events = Events(reader)
    emulator.fail_next_read()
    emulator.place_card("resident")
    wait_until(lambda: events.kinds("card_placed"), step=reader.poll)
    (placed,) = events.kinds("card_placed")
    assert placed.data["code"] == "read_failed" and "0x41" in placed.data["error"]
    assert "identity" not in placed.data
    for _ in range(5):
        reader.poll()
    assert len(events.kinds("card_placed")) == 1 and emulator.count(p.READ_TEXT_PHOTO) == 1
    emulator.remove_card()
    wait_until(lambda: events.kinds("card_removed"), step=reader.poll)


def test_expired_card_is_reported_invalid(emulator: SamEmulator, reader: SamSerialReader) -> None:
    events = Events(reader)
    emulator.place_card("resident-expired")
    wait_until(lambda: events.kinds("card_placed"), step=reader.poll)
    (placed,) = events.kinds("card_placed")
    assert placed.data["code"] == "expired" and "过期" in placed.data["error"]
    assert placed.data["identity"].validity_problem(TODAY) == "expired"


def test_card_not_yet_valid(emulator: SamEmulator) -> None:
    r = make_reader(emulator, today=lambda: dt.date(2019, 12, 31))
    r.open()
    try:
        events = Events(r)
        emulator.place_card("resident")
        wait_until(lambda: events.kinds("card_placed"), step=r.poll)
        assert events.kinds("card_placed")[0].data["code"] == "not_yet_valid"
    finally:
        r.close()


def test_card_with_bad_check_digit(tmp_path: Path) -> None:
    cards = tmp_path / "cards"
    cards.mkdir()
    text = (CARDS_DIR / "resident.toml").read_text(encoding="utf-8")
    forged = text.replace('id_number = "110101199003070011"', 'id_number = "110101199003070012"')
    assert forged != text
    (cards / "forged.toml").write_text(forged, encoding="utf-8")
    with SamEmulator(cards_dir=str(cards), link=str(tmp_path / "idcard")) as emu:
        r = make_reader(emu)
        r.open()
        try:
            events = Events(r)
            emu.place_card("forged")
            wait_until(lambda: events.kinds("card_placed"), step=r.poll)
            assert events.kinds("card_placed")[0].data["code"] == "bad_id_number"
        finally:
            r.close()


# -- line faults -------------------------------------------------------------------------------
def test_garbage_before_a_reply_is_skipped(emulator: SamEmulator, reader: SamSerialReader) -> None:
    emulator.place_card("resident")
    emulator.send_garbage()
    assert reader.read_card().id_number == emulator.card("resident").id_number
    assert emulator.count(p.FIND_CARD) == 1  # resynchronised without resending


def test_impossible_length_is_retried(emulator: SamEmulator, reader: SamSerialReader) -> None:
    before = emulator.count(p.SAM_STATUS)
    emulator.send_garbage(p.PREAMBLE + b"\xFF\xFF")
    results = reader.self_test()
    assert all(r.passed for r in results), results
    assert emulator.count(p.SAM_STATUS) == before + 2


def test_bad_checksum_is_retried(emulator: SamEmulator, reader: SamSerialReader) -> None:
    emulator.place_card("resident")
    emulator.corrupt_next_checksum()
    assert reader.read_card().name == emulator.card("resident").name
    assert emulator.count(p.FIND_CARD) == 2


def test_persistent_bad_checksum_gives_a_protocol_error(emulator: SamEmulator) -> None:
    r = make_reader(emulator, retries=2)
    r.open()
    try:
        emulator.corrupt_next_checksum(times=3)
        before = emulator.count(p.FIND_CARD)
        with pytest.raises(DeviceProtocolError, match="3 attempts"):
            r.read_card()
        assert emulator.count(p.FIND_CARD) == before + 3
    finally:
        r.close()


def test_slow_answer_times_out(emulator: SamEmulator) -> None:
    r = make_reader(emulator, timeout_s=0.3)
    r.open()
    try:
        emulator.set_delay(1.0)
        with pytest.raises(DeviceTimeout, match=str(emulator.link)):
            r.read_card()
        emulator.set_delay(0)
        wait_until(emulator.idle)
        emulator.place_card("resident")  # the late reply was flushed: the next command is clean
        assert r.read_card().id_number == emulator.card("resident").id_number
    finally:
        r.close()


# -- unplug / replug ---------------------------------------------------------------------------
def test_unplug_makes_poll_raise_disconnected(emulator: SamEmulator, reader: SamSerialReader) -> None:
    emulator.unplug()
    with pytest.raises(DeviceDisconnected) as err:
        reader.poll()
    assert str(emulator.link) in str(err.value)
    assert reader.status().device is DeviceState.OFFLINE


def test_supervisor_marks_offline_and_reconnects_after_replug(emulator: SamEmulator) -> None:
    r = make_reader(emulator)
    supervisor = Supervisor([r], backoff_min=0.05, backoff_max=0.2)
    events = Events(r)
    supervisor.round()  # opens the reader
    assert r.status().device is DeviceState.ONLINE
    emulator.place_card("resident")
    wait_until(lambda: events.kinds("card_placed"), step=supervisor.round)

    emulator.unplug()
    supervisor.round()
    status = r.status()
    assert status.device is DeviceState.OFFLINE and str(emulator.link) in status.fault
    assert events.cards()[-1] == ("removed", "closed")
    for _ in range(3):  # while unplugged it stays offline, and says why
        time.sleep(0.06)
        supervisor.round()
        assert r.status().device is DeviceState.OFFLINE
    assert str(emulator.link) in r.status().fault

    emulator.replug()
    assert os.path.realpath(str(emulator.link)) == emulator.port  # the link follows the new pty
    wait_until(lambda: r.status().device is DeviceState.ONLINE, step=supervisor.round)
    # the card stayed on the power-cycled reader: it is read again
    wait_until(lambda: len(events.kinds("card_placed")) == 2, step=supervisor.round)
    supervisor.stop()
    assert r.status().device is DeviceState.OFFLINE


def test_open_on_a_missing_port_fails_with_the_port_named(tmp_path: Path) -> None:
    r = SamSerialReader("idcard", port=str(tmp_path / "nothing"), timeout_s=0.3)
    with pytest.raises(DeviceDisconnected, match="nothing"):
        r.open()
    assert r.status().device is DeviceState.OFFLINE and "nothing" in r.status().fault


# -- self-test, config, privacy ----------------------------------------------------------------
def test_self_test_reports_the_sam_id(emulator: SamEmulator) -> None:
    r = make_reader(emulator)
    results = r.self_test()  # opens and closes by itself
    assert [x.name for x in results] == ["port opens", "SAM status", "SAM ID", "photo decoder"]
    assert all(x.passed for x in results)
    assert emulator.sam_id in results[2].detail
    assert r.status().device is DeviceState.OFFLINE


def test_self_test_flags_a_missing_photo_decoder_library(emulator: SamEmulator) -> None:
    r = make_reader(emulator, photo_decoder="/nonexistent/libwlt.so")
    results = {x.name: x for x in r.self_test()}
    assert results["SAM status"].passed and not results["photo decoder"].passed
    assert "/nonexistent/libwlt.so" in results["photo decoder"].detail


def test_params_model() -> None:
    from pydantic import ValidationError

    params = SamSerialReader.Params(port="/dev/ttyUSB0")
    assert (params.baudrate, params.timeout_s, params.retries, params.photo_decoder) == (115200, 1.0, 2, "")
    for name, field in SamSerialReader.Params.model_fields.items():
        assert field.description, name
    with pytest.raises(ValidationError):
        SamSerialReader.Params(port="/dev/ttyUSB0", speed=3)  # type: ignore[call-arg]
    with pytest.raises(ValidationError):
        SamSerialReader.Params(port="/dev/ttyUSB0", baudrate="fast")  # type: ignore[arg-type]


def test_registry_finds_driver_and_emulator() -> None:
    from devices import registry

    assert registry.driver_class("idcard", "sam_serial") is SamSerialReader
    assert registry.emulator_class("idcard", "sam_serial") is SamEmulator


def test_nothing_personal_is_logged(emulator: SamEmulator, reader: SamSerialReader,
                                    caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    events = Events(reader)
    for card_id in ("resident-long-term", "resident-expired", "foreigner-2023"):
        emulator.place_card(card_id)
        wait_until(lambda: events.kinds("card_placed"), step=reader.poll)
        events.items.clear()
        card = emulator.card(card_id)
        for secret in (card.name, card.id_number, card.address, card.english_name, card.appended_address):
            if secret:
                assert secret not in caplog.text
    assert "********" in caplog.text  # masked numbers are what a technician sees


# -- standalone emulator -----------------------------------------------------------------------
def test_emulator_runs_standalone(tmp_path: Path) -> None:
    link = tmp_path / "standalone"
    proc = subprocess.Popen(
        [sys.executable, "-m", "devices.idcard.emulator", "--link", str(link), "--card", "foreigner-2017"],
        cwd=ROOT, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
    )
    try:
        assert proc.stdout is not None and proc.stdin is not None
        assert proc.stdout.readline().startswith("port /dev/")
        r = SamSerialReader("idcard", port=str(link), timeout_s=2.0)
        r.open()
        try:
            assert r.read_card().english_name == "TESTER, JOHN SAMPLE"
        finally:
            r.close()
        proc.stdin.write("quit\n")
        proc.stdin.flush()
        assert proc.wait(timeout=10) == 0
        assert not link.exists()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
