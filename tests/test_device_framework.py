"""The device framework itself: status events, supervision and reconnection with back-off."""
from __future__ import annotations

import pytest

from devices import registry
from devices.base import (Device, DeviceDisconnected, DeviceError, DeviceState, MediaState,
                          SelfTestResult)
from devices.supervisor import Supervisor


class Flaky(Device):
    """Unit-test device whose presence the test switches on and off."""

    device_class = "test"

    def __init__(self, name: str = "flaky") -> None:
        super().__init__(name)
        self.plugged = True
        self.opens = 0

    def _open(self) -> None:
        if not self.plugged:
            raise DeviceDisconnected("port /dev/ttyTEST is gone: check the USB cable")
        self.opens += 1
        self.set_status(DeviceState.ONLINE, MediaState.ABSENT)

    def _close(self) -> None:
        pass

    def poll(self) -> None:
        if not self.plugged:
            raise DeviceDisconnected("no answer on /dev/ttyTEST: unplugged?")

    def self_test(self) -> list[SelfTestResult]:
        return [SelfTestResult("answers", self.plugged, "answered" if self.plugged else "silent")]


def test_status_changes_are_events_once() -> None:
    dev = Flaky()
    events = []
    unsubscribe = dev.subscribe(events.append)
    dev.open()
    dev.set_status(DeviceState.ONLINE, MediaState.ABSENT)  # no change: no event
    dev.set_status(DeviceState.ONLINE, MediaState.PRESENT)
    unsubscribe()
    dev.set_status(DeviceState.HARDWARE_ERROR, fault="x")
    assert [e.data["media"] for e in events] == ["absent", "present"]
    assert events[0].kind == "status_changed" and events[0].source == "flaky"


def test_a_broken_listener_does_not_stop_the_device() -> None:
    dev = Flaky()

    def broken(event):  # type: ignore[no-untyped-def]
        raise RuntimeError("listener bug")

    seen = []
    dev.subscribe(broken)
    dev.subscribe(seen.append)
    dev.open()
    assert seen and dev.status().device is DeviceState.ONLINE


def test_supervisor_marks_offline_and_reconnects(monkeypatch: pytest.MonkeyPatch) -> None:
    now = [100.0]
    monkeypatch.setattr("devices.supervisor.time.monotonic", lambda: now[0])
    dev = Flaky()
    sup = Supervisor([dev], backoff_min=1.0, backoff_max=8.0)
    for watch in sup._watches:
        sup._try_open(watch, now[0])
    assert dev.status().device is DeviceState.ONLINE and dev.opens == 1

    dev.plugged = False
    sup.round()
    status = dev.status()
    assert status.device is DeviceState.OFFLINE and "unplugged" in status.fault

    for _ in range(40):  # 20 s unplugged: it keeps trying, and says why it fails
        now[0] += 0.5
        sup.round()
    assert dev.status().device is DeviceState.OFFLINE and "check the USB cable" in dev.status().fault

    dev.plugged = True
    for _ in range(20):
        now[0] += 1.0
        sup.round()
    assert dev.status().device is DeviceState.ONLINE and dev.opens == 2


def test_supervisor_backoff_grows() -> None:
    dev = Flaky()
    dev.plugged = False
    sup = Supervisor([dev], backoff_min=0.5, backoff_max=4.0)
    watch = sup._watches[0]
    waits = []
    for _ in range(6):
        sup._try_open(watch, 0.0)
        waits.append(watch.backoff)
    assert waits == [0.5, 1.0, 2.0, 4.0, 4.0, 4.0]


def test_open_failure_is_a_status() -> None:
    dev = Flaky()
    dev.plugged = False
    with pytest.raises(DeviceError):
        dev.open()
    assert dev.status().device is DeviceState.OFFLINE and "USB cable" in dev.status().fault


def test_registry_names() -> None:
    assert "idcard" in registry.known_classes()
    assert registry.known_drivers("idcard") == ["sam_serial"]
    with pytest.raises(registry.UnknownDriver, match="known: sam_serial"):
        registry.driver_class("idcard", "nope")
    with pytest.raises(registry.UnknownDriver, match="unknown device class"):
        registry.driver_class("toaster", "x")
