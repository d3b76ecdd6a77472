"""What every driver on a serial line shares: the errors that mean the line is gone, and
the bookkeeping of its one port, so each driver words its faults the same way."""
from __future__ import annotations

import logging
from typing import Any

import serial

try:  # termios.error is not an OSError: a hung-up pty raises it from tcflush
    import termios

    TTY_ERRORS: tuple[type[BaseException], ...] = (termios.error,)
except ImportError:  # pragma: no cover - not on POSIX
    TTY_ERRORS = ()

# an error from any of these on a port means the line is gone (unplugged, server away)
LINK_ERRORS: tuple[type[BaseException], ...] = (OSError, serial.SerialException) + TTY_ERRORS
# pyserial URLs of a device behind a serial-device server
NETWORK_SCHEMES = ("socket://", "rfc2217://")

log = logging.getLogger(__name__)


class SerialPortOwner:
    """Mixin of a driver that keeps one pyserial port in `self._port`, opened from
    `self.params.port`; `WHAT` names the device in a technician's words."""

    WHAT = "serial device"
    name: str
    params: Any
    _port: Any

    @property
    def port_name(self) -> str:
        return str(self.params.port)

    @property
    def _networked(self) -> bool:
        """True for a device behind a serial-device server (socket:// or rfc2217://)."""
        return self.port_name.startswith(NETWORK_SCHEMES)

    def _where(self) -> str:
        return f"{self.WHAT} {self.name} on {self.port_name}"

    def _require_port(self) -> Any:
        from devices.base import DeviceDisconnected

        if self._port is None:
            raise DeviceDisconnected(f"{self._where()} is not open")
        return self._port

    def _close_port(self) -> None:
        port, self._port = self._port, None
        self._forget_line()
        if port is not None:
            try:
                port.close()
            except LINK_ERRORS as exc:  # closing a vanished port may fail; it is closed anyway
                log.debug("%s: error while closing: %s", self._where(), exc)

    def _forget_line(self) -> None:
        """What the driver drops when its line closes (half-read frames and the like)."""
