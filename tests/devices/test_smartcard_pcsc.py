"""The PC/SC driver through the real pcscd, with virtual social security cards behind vpcd.

Cards from devices/smartcard/cards are inserted into the bench (tests/conftest.py
`pcsc_rig`), the driver reads them with its profiles, and every fault a reader meets
is played: a card pulled mid-read, a blocked or foreign card, damaged records, pcscd
restarted or stopped, the reader unplugged. Each must end as a clear event or an offline
status that recovers by itself, never a crash or a hang.
"""
from __future__ import annotations

import datetime as dt
import logging
import threading
from collections.abc import Iterator
from typing import Any

import pytest
from waiting import wait_until

from devices.base import DeviceDisconnected, DeviceEvent, DeviceState, MediaState
from devices.smartcard.emulator import FACTORY
from devices.smartcard.pcsc_driver import PcscReader
from devices.smartcard.pcscd_rig import PcscdRig
from devices.supervisor import Supervisor

TODAY = dt.date(2026, 11, 27)


class Recorder:
    """Collects a device's events for the assertions."""

    def __init__(self) -> None:
        self.events: list[DeviceEvent] = []
        self._lock = threading.Lock()

    def __call__(self, event: DeviceEvent) -> None:
        with self._lock:
            self.events.append(event)

    def kinds(self, *kinds: str) -> list[DeviceEvent]:
        with self._lock:
            return [e for e in self.events if e.kind in kinds]

    def placed(self, count: int = 1, timeout: float = 10) -> DeviceEvent:
        return wait_until(lambda: len(self.kinds("card_placed")) >= count and self.kinds("card_placed")[count - 1],
                          timeout)

    def removed(self, count: int = 1, timeout: float = 10) -> DeviceEvent:
        return wait_until(lambda: len(self.kinds("card_removed")) >= count and self.kinds("card_removed")[count - 1],
                          timeout)


@pytest.fixture
def bench(pcsc_bench: PcscdRig) -> PcscdRig:
    """The virtual reader tidied before and after (tests/conftest.py)."""
    return pcsc_bench


@pytest.fixture
def reader(bench: PcscdRig) -> Iterator[tuple[PcscReader, Recorder]]:
    device = PcscReader("smartcard", reader=bench.reader_names()[0], pcsc_socket=bench.socket_path,
                        today=lambda: TODAY)
    recorder = Recorder()
    device.subscribe(recorder)
    device.open()
    wait_until(lambda: device.status().media is MediaState.ABSENT)
    yield device, recorder
    device.close()


def insert(bench: PcscdRig, card: str, **behaviour: Any) -> None:
    bench.insert(0, FACTORY, card=card, **behaviour)


def test_a_third_generation_card_is_read_with_its_photo_and_removed(reader, bench) -> None:  # type: ignore[no-untyped-def]
    device, events = reader
    insert(bench, "zhang-san")
    placed = events.placed()
    identity = placed.data["identity"]
    assert "error" not in placed.data and placed.data["card_type"] == "social_security"
    assert (identity.name, identity.id_number, identity.profile) == ("张三", "110101199003070011", "social_security_3")
    assert identity.photo_bmp[:3] == b"\xff\xd8\xff" and identity.issuer == "北京市 110100"
    assert device.status() .media is MediaState.PRESENT
    bench.remove(0)
    assert events.removed().data["reason"] == "removed"
    wait_until(lambda: device.status().media is MediaState.ABSENT)
    assert len(events.kinds("card_placed")) == len(events.kinds("card_removed")) == 1


@pytest.mark.parametrize("card, profile", [("li-si-gen2", "social_security_2"),
                                           ("liu-guizhi-gen1", "social_security_1")])
def test_older_generations_are_read_by_the_next_profiles(reader, bench, card: str, profile: str) -> None:  # type: ignore[no-untyped-def]
    _device, events = reader
    insert(bench, card)
    identity = events.placed().data["identity"]
    assert identity.profile == profile and identity.photo_bmp is None and identity.birth_date is not None


@pytest.mark.parametrize("behaviour, code", [
    ({"wrong_application": True}, "not_social_security"),
    ({"blocked": True}, "card_blocked"),
    ({"truncate": {"name": 4}}, "bad_card_data"),
    ({"tlv_length": {"card_number": 3}}, "bad_card_data"),
    ({"tlv_length": {"id_number": -1}}, "bad_card_data"),
    ({"sw": {"issue_date": "6F00"}}, "read_failed"),
    ({"garbage": True}, "malformed_reply"),
])
def test_cards_that_cannot_be_read_give_a_coded_event(reader, bench, behaviour: dict, code: str) -> None:  # type: ignore[no-untyped-def]
    device, events = reader
    insert(bench, "zhang-san", **behaviour)
    placed = events.placed()
    assert placed.data["code"] == code and "identity" not in placed.data
    assert placed.data["error"]  # words for the log and the technician
    assert device.status().device is DeviceState.ONLINE
    bench.remove(0)
    events.removed()


def test_an_expired_card_comes_with_its_identity_and_the_problem(reader, bench) -> None:  # type: ignore[no-untyped-def]
    _device, events = reader
    insert(bench, "zhang-san-expired")
    placed = events.placed()
    assert placed.data["code"] == "expired" and placed.data["identity"].valid_to == dt.date(2021, 6, 1)


def test_a_card_pulled_mid_read_is_reported_then_removed_once(reader, bench) -> None:  # type: ignore[no-untyped-def]
    device, events = reader
    insert(bench, "zhang-san", pull_after=5)
    placed = events.placed()
    assert placed.data["code"] == "card_pulled" and "identity" not in placed.data
    events.removed()
    wait_until(lambda: device.status().media is MediaState.ABSENT)
    assert len(events.kinds("card_removed")) == 1
    insert(bench, "zhang-san")  # and the next card is read normally
    assert events.placed(2).data["identity"].name == "张三"


def test_a_slow_card_is_still_read(reader, bench) -> None:  # type: ignore[no-untyped-def]
    _device, events = reader
    insert(bench, "li-si-gen2", slow=0.05)
    assert events.placed(timeout=20).data["identity"].name == "李四"


def test_read_card_on_demand_and_with_no_card(reader, bench) -> None:  # type: ignore[no-untyped-def]
    device, events = reader
    from devices.smartcard.interface import NoCardError

    with pytest.raises(NoCardError):
        device.read_card()
    insert(bench, "liu-guizhi-gen1")
    events.placed()
    assert device.read_card().name == "刘桂芝"


def test_pcscd_restart_is_an_offline_spell_that_recovers_by_itself(reader, bench) -> None:  # type: ignore[no-untyped-def]
    device, events = reader
    supervisor = Supervisor([device], backoff_min=0.1, backoff_max=0.5)
    insert(bench, "zhang-san")
    events.placed()
    bench.restart_pcscd()
    wait_until(lambda: device.status().device is DeviceState.OFFLINE, step=supervisor.round)
    assert "pcscd" in device.status().fault or "PC/SC" in device.status().fault
    assert events.removed().data["reason"] == "closed"  # the card went with the service
    wait_until(lambda: device.status().device is DeviceState.ONLINE, timeout=15, step=supervisor.round)
    assert events.placed(2).data["identity"].name == "张三"  # the card still in is read again


def test_pcscd_stopped_says_so_and_comes_back(reader, bench) -> None:  # type: ignore[no-untyped-def]
    device, _events = reader
    supervisor = Supervisor([device], backoff_min=0.1, backoff_max=0.5)
    bench.stop_pcscd()
    wait_until(lambda: device.status().device is DeviceState.OFFLINE, step=supervisor.round)
    wait_until(lambda: "pcscd" in device.status().fault and "not running" in device.status().fault,
               step=supervisor.round)
    bench.start_pcscd()
    wait_until(lambda: device.status().device is DeviceState.ONLINE, timeout=15, step=supervisor.round)


def test_reader_unplugged_and_plugged_back(reader, bench) -> None:  # type: ignore[no-untyped-def]
    device, events = reader
    supervisor = Supervisor([device], backoff_min=0.1, backoff_max=0.5)
    bench.unplug()
    wait_until(lambda: "reader" in device.status().fault and device.status().device is DeviceState.OFFLINE,
               step=supervisor.round)
    bench.plug()
    wait_until(lambda: device.status().device is DeviceState.ONLINE, timeout=15, step=supervisor.round)
    insert(bench, "zhang-san")
    assert events.placed().data["identity"].name == "张三"


def test_an_unknown_reader_name_lists_the_readers_there(bench) -> None:  # type: ignore[no-untyped-def]
    device = PcscReader("smartcard", reader="ACS ACR39U", pcsc_socket=bench.socket_path)
    with pytest.raises(DeviceDisconnected, match="'ACS ACR39U' is not connected; pcscd lists: Virtual PCD 00 00"):
        device.open()
    assert device.status().device is DeviceState.OFFLINE


def test_closing_with_a_card_in_ends_with_card_removed(bench) -> None:  # type: ignore[no-untyped-def]
    device = PcscReader("smartcard", reader=bench.reader_names()[0], pcsc_socket=bench.socket_path)
    recorder = Recorder()
    device.subscribe(recorder)
    device.open()
    insert(bench, "li-si-gen2")
    recorder.placed()
    device.close()
    assert recorder.kinds("card_removed")[-1].data["reason"] == "closed"
    assert device.status().device is DeviceState.OFFLINE


def test_self_test_reads_an_inserted_card(reader, bench) -> None:  # type: ignore[no-untyped-def]
    device, events = reader
    results = {r.name: r for r in device.self_test()}
    assert results["pcsc_service"].passed and results["reader"].passed and "no card" in results["card"].detail
    insert(bench, "zhang-san")
    events.placed()
    card = {r.name: r for r in device.self_test()}["card"]
    assert card.passed and "social_security_3" in card.detail and "A10000001" not in card.detail


def test_nothing_personal_in_the_logs(reader, bench, caplog: pytest.LogCaptureFixture) -> None:  # type: ignore[no-untyped-def]
    _device, events = reader
    caplog.set_level(logging.DEBUG)
    insert(bench, "zhang-san")
    events.placed()
    insert_text = caplog.text
    for secret in ("110101199003070011", "张三", "A10000001"):
        assert secret not in insert_text
    assert "110101********0011" in insert_text


def test_a_card_swapped_for_another_at_once_is_seen_as_two_cards(reader, bench) -> None:  # type: ignore[no-untyped-def]
    """Out and another in between two of pcscd's presence polls: still removed, then the new card."""
    _device, events = reader
    insert(bench, "zhang-san")
    events.placed()
    bench.remove(0)
    insert(bench, "li-si-gen2")
    assert events.placed(2, timeout=15).data["identity"].name == "李四"
    assert len(events.kinds("card_removed")) == 1
    kinds = [e.kind for e in events.kinds("card_placed", "card_removed")]
    assert kinds == ["card_placed", "card_removed", "card_placed"]
