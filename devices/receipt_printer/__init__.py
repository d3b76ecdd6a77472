"""Receipt printers: document model, interface, ESC/POS serial driver, emulator.

Import the driver and emulator modules directly (devices.receipt_printer.driver,
devices.receipt_printer.emulator); this package exports the document model and the
interface, which need no serial library.
"""
from devices.receipt_printer.document import Align, Document, ErrorCorrection, columns_for, text_columns, wrap
from devices.receipt_printer.interface import (
    PAPER_LOW,
    PAPER_OK,
    PAPER_OUT,
    CoverOpen,
    PaperOut,
    PrinterFault,
    PrinterJammed,
    ReceiptPrinter,
)

__all__ = [
    "PAPER_LOW",
    "PAPER_OK",
    "PAPER_OUT",
    "Align",
    "CoverOpen",
    "Document",
    "ErrorCorrection",
    "PaperOut",
    "PrinterFault",
    "PrinterJammed",
    "ReceiptPrinter",
    "columns_for",
    "text_columns",
    "wrap",
]

_LAZY = {
    "EscPosSerialPrinter": "devices.receipt_printer.driver",
    "EscPosEmulator": "devices.receipt_printer.emulator",
}


def __getattr__(name: str) -> object:
    """Driver and emulator on first use, so importing the model needs no pyserial."""
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
