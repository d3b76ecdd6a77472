"""What every receipt printer offers the kiosk, whatever its wire.

Verb: ``print_document(document)`` prints a devices.receipt_printer.document.Document
and returns only once the printer confirmed, after the last byte, that it still has
paper and no error. It raises:

- ``PaperOut`` before a single byte is sent when the paper is out (nothing printed), or
  after sending when the paper ran out during the receipt (``incomplete`` is True: part
  of the receipt may have come out);
- ``PrinterJammed`` for a paper jam or a cutter error, ``CoverOpen`` for an open cover,
  ``PrinterFault`` (their base) for the printer's other errors (head too hot, internal);
  each has ``incomplete`` like PaperOut;
- ``DeviceTimeout`` when the printer does not answer a status query (some models go
  silent without paper), or holds the line shut (XOFF) for too long;
- ``DeviceDisconnected`` when the port is gone (the supervisor reopens it);
- ``ReceiptTooWide`` (devices.receipt_printer.escpos) before anything is sent when a block
  cannot fit the paper (a QR code of too much data for its module size).

All are DeviceErrors whose str() says what failed and what to check. While a receipt
prints, ``poll()`` (the supervisor's) skips its status round rather than wait.

Status (devices.base, CEN/XFS style), published through ``status_changed``:

=================  ======================  ==================================================
device             media                   when
=================  ======================  ==================================================
ONLINE             PRESENT                 paper loaded, no error
ONLINE             LOW                     near-end sensor: a roll change is due (fault says so)
ONLINE             OUT                     no paper: nothing can be printed
HARDWARE_ERROR     JAMMED                  paper jam or cutter error
HARDWARE_ERROR     PRESENT/LOW/OUT         cover open, or another error the printer reports
HARDWARE_ERROR     UNKNOWN                 the printer does not answer status queries
OFFLINE            UNKNOWN                 port closed or gone
=================  ======================  ==================================================

Events (DeviceEvent.kind, with DeviceEvent.data ``{"media": ..., "fault": ...}``), sent
once per change of the paper state, after the status_changed that carries it:

- ``paper_low``: the paper reached its near-end mark (print a few more receipts at most;
  tell the help desk to change the roll);
- ``paper_out``: no paper left; receipts cannot be printed until a roll is loaded;
- ``paper_ok``: paper is loaded again after paper_low or paper_out.
"""
from __future__ import annotations

import abc

from devices.base import Device, DeviceError
from devices.receipt_printer.document import Document

PAPER_LOW = "paper_low"
PAPER_OUT = "paper_out"
PAPER_OK = "paper_ok"


class PaperOut(DeviceError):
    """No paper: before printing (nothing was sent) or during it (the receipt may be incomplete)."""

    def __init__(self, message: str, incomplete: bool = False) -> None:
        super().__init__(message)
        self.incomplete = incomplete


class PrinterFault(DeviceError):
    """The printer reports an error of its own (see the subclasses); the fault text says what to do."""

    def __init__(self, message: str, incomplete: bool = False) -> None:
        super().__init__(message)
        self.incomplete = incomplete


class PrinterJammed(PrinterFault):
    """Paper jam or cutter error: someone must open the printer and clear the paper path."""


class CoverOpen(PrinterFault):
    """The paper cover is open: the printer will not print until it is closed."""


class ReceiptPrinter(Device):
    """A receipt printer: prints receipt documents and watches its paper."""

    device_class = "receipt_printer"

    @property
    @abc.abstractmethod
    def columns(self) -> int:
        """Columns of normal-size ASCII on this printer's paper (48 on 80 mm, 32 on 58 mm)."""

    @abc.abstractmethod
    def print_document(self, document: Document) -> None:
        """Print `document` and confirm it printed (see the module notes for the exceptions)."""
