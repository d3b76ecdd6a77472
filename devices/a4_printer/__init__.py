"""A4 printers: interface, CUPS driver (pycups), private-cupsd + cups-pdf emulator.

Import the driver and emulator modules directly (devices.a4_printer.driver,
devices.a4_printer.emulator); this package exports the interface, which needs neither
pycups nor a cupsd.
"""
from devices.a4_printer.interface import (
    JOB_CHANGED,
    REASON_TEXT,
    A4Printer,
    JobReason,
    JobState,
    JobStatus,
    PrinterOffline,
    PrinterRejecting,
    PrintJob,
    QueueNotFound,
    UnsafeJobTitle,
    check_title,
)

__all__ = [
    "JOB_CHANGED",
    "REASON_TEXT",
    "A4Printer",
    "JobReason",
    "JobState",
    "JobStatus",
    "PrintJob",
    "PrinterOffline",
    "PrinterRejecting",
    "QueueNotFound",
    "UnsafeJobTitle",
    "check_title",
]

_LAZY = {
    "CupsPrinter": "devices.a4_printer.driver",
    "CupsPdfEmulator": "devices.a4_printer.emulator",
}


def __getattr__(name: str) -> object:
    """Driver and emulator on first use, so importing the interface needs no pycups."""
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
