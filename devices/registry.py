"""Drivers and emulators chosen by name in config, imported lazily.

Like python-can's interface table: the config names a device class and a driver; this
module knows where each lives, so adding a driver is one line here and no import cost
for terminals that do not use it.
"""
from __future__ import annotations

import importlib
from typing import Any

from devices.base import Device

# device class -> driver name -> "module:Class"
DRIVERS: dict[str, dict[str, str]] = {
    "idcard": {"sam_serial": "devices.idcard.driver:SamSerialReader"},
    "camera": {"opencv": "devices.camera.driver:OpenCvCamera"},
    "receipt_printer": {"escpos_serial": "devices.receipt_printer.driver:EscPosSerialPrinter"},
    "a4_printer": {"cups": "devices.a4_printer.driver:CupsPrinter"},
    "scanner": {"sane": "devices.scanner.sane_driver:SaneScanner",
                "document_camera": "devices.scanner.document_camera:DocumentCamera"},
    "qr_scanner": {"serial": "devices.qr_scanner.serial_driver:SerialQrScanner",
                   "camera": "devices.qr_scanner.camera_driver:CameraQrScanner"},
    "smartcard": {"pcsc": "devices.smartcard.pcsc_driver:PcscReader"},
}

# device class -> driver name -> "module:Class" of an emulator speaking that driver's wire
EMULATORS: dict[str, dict[str, str]] = {
    "idcard": {"sam_serial": "devices.idcard.emulator:SamEmulator"},
    "camera": {"opencv": "devices.camera.emulator:CameraEmulator"},
    "receipt_printer": {"escpos_serial": "devices.receipt_printer.emulator:EscPosEmulator"},
    "a4_printer": {"cups": "devices.a4_printer.emulator:CupsPdfEmulator"},
    "scanner": {"sane": "devices.scanner.sane_emulator:SaneTestEmulator",
                "document_camera": "devices.scanner.document_camera_emulator:DocumentCameraEmulator"},
    "qr_scanner": {"serial": "devices.qr_scanner.serial_emulator:SerialQrEmulator",
                   "camera": "devices.qr_scanner.camera_emulator:QrCameraEmulator"},
    "smartcard": {"pcsc": "devices.smartcard.emulator:PcscCardEmulator"},
}


class UnknownDriver(LookupError):
    """The config names a device class or driver this build does not have."""


def _load(path: str) -> Any:
    module, _, attr = path.partition(":")
    return getattr(importlib.import_module(module), attr)


def known_classes() -> list[str]:
    return sorted(DRIVERS)


def known_drivers(device_class: str) -> list[str]:
    return sorted(DRIVERS.get(device_class, {}))


def driver_class(device_class: str, driver: str) -> type[Device]:
    if device_class not in DRIVERS:
        raise UnknownDriver(f"unknown device class {device_class!r}; known: {', '.join(known_classes())}")
    drivers = DRIVERS[device_class]
    if driver not in drivers:
        raise UnknownDriver(
            f"unknown {device_class} driver {driver!r}; known: {', '.join(sorted(drivers))}"
        )
    return _load(drivers[driver])


def emulator_class(device_class: str, driver: str) -> type:
    try:
        return _load(EMULATORS[device_class][driver])
    except KeyError:
        raise UnknownDriver(f"no emulator for {device_class} driver {driver!r}") from None
