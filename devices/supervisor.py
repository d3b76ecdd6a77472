"""Keeps devices alive: a vanished device becomes an offline status, then comes back.

One thread for all devices. Each round it polls every online device; a device whose
poll or open raises a DeviceError is marked offline with the fault in words, and is
reopened with exponential back-off, so an unplugged reader recovers by itself when
plugged in again and a dead one does not burn the CPU.
"""
from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass

from devices.base import Device, DeviceError, DeviceState

log = logging.getLogger(__name__)


@dataclass
class _Watch:
    device: Device
    retry_at: float = 0.0
    backoff: float = 0.0


class Supervisor:
    def __init__(self, devices: list[Device], interval: float = 0.2,
                 backoff_min: float = 0.5, backoff_max: float = 30.0) -> None:
        self._watches = [_Watch(d) for d in devices]
        self.interval = interval
        self.backoff_min = backoff_min
        self.backoff_max = backoff_max
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        """Open every device once (failures are statuses, not exceptions) and watch them."""
        for watch in self._watches:
            self._try_open(watch, time.monotonic())
        self._thread = threading.Thread(target=self._run, name="device-supervisor", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        for watch in self._watches:
            try:
                watch.device.close()
            except DeviceError as exc:
                log.warning("closing %s: %s", watch.device.name, exc)

    def round(self) -> None:
        """One supervision round; public so tests can drive it without the thread."""
        now = time.monotonic()
        for watch in self._watches:
            dev = watch.device
            if dev.status().device in (DeviceState.OFFLINE, DeviceState.NO_DEVICE):
                if now >= watch.retry_at:
                    self._try_open(watch, now)
                continue
            try:
                dev.poll()
            except DeviceError as exc:
                log.warning("%s lost: %s", dev.name, exc)
                try:
                    dev.close()
                except DeviceError:
                    pass
                dev.set_status(DeviceState.OFFLINE, fault=str(exc))
                watch.backoff = 0.0
                watch.retry_at = now + self.backoff_min

    def _try_open(self, watch: _Watch, now: float) -> None:
        try:
            watch.device.open()
        except DeviceError as exc:
            watch.backoff = min(self.backoff_max, max(self.backoff_min, watch.backoff * 2))
            watch.retry_at = now + watch.backoff
            log.info("%s not available (%s); next try in %.1f s", watch.device.name, exc, watch.backoff)
        else:
            watch.backoff = 0.0

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                self.round()
            except Exception:  # supervision must never die silently
                log.exception("device supervision round failed")
