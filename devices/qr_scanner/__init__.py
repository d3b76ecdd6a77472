"""QR/barcode scanners: interface, serial driver, camera (zxing-cpp) driver, emulators.

Import the driver and emulator modules directly (devices.qr_scanner.serial_driver,
devices.qr_scanner.camera_driver, ...); this package exports the interface, which needs
neither pyserial nor OpenCV. What a code says is checked by kiosk.codes, not here.
"""
from devices.qr_scanner.interface import (
    CODE_SCANNED,
    CODE_UNREADABLE,
    COUNTERS,
    UNREADABLE_REASONS,
    QrScanner,
    ScanGate,
)

__all__ = ["CODE_SCANNED", "CODE_UNREADABLE", "COUNTERS", "UNREADABLE_REASONS", "QrScanner", "ScanGate"]

_LAZY = {
    "SerialQrScanner": "devices.qr_scanner.serial_driver",
    "CameraQrScanner": "devices.qr_scanner.camera_driver",
    "SerialQrEmulator": "devices.qr_scanner.serial_emulator",
    "QrCameraEmulator": "devices.qr_scanner.camera_emulator",
}


def __getattr__(name: str) -> object:
    """Drivers and emulators on first use, so importing the interface stays cheap."""
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
