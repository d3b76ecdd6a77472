"""Cameras: interface, OpenCV VideoCapture driver, MJPEG-over-HTTP emulator.

Import the driver and emulator modules directly (devices.camera.driver,
devices.camera.emulator); this package exports the interface, which needs neither
OpenCV's capture stack nor the emulator's face models.
"""
from devices.camera.interface import Camera, Frame

__all__ = ["Camera", "Frame"]

_LAZY = {
    "OpenCvCamera": "devices.camera.driver",
    "CameraEmulator": "devices.camera.emulator",
}


def __getattr__(name: str) -> object:
    """Driver and emulator on first use, so importing the interface stays cheap."""
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
