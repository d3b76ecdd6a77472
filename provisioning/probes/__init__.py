"""What `python -m provisioning detect` found, and the checks every probe shares.

One module per kind of device stack (serial_ports, pcsc, cameras, cups_queues,
sane_scanners); each returns `Finding`s (a device that answered, with the
`[devices.<name>]` driver and parameters it suggests) and `Problem`s (something the
technician has to look at: a daemon not running, a port held by another program).
Nothing here prints: detect.py turns the results into words or JSON.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

Confidence = Literal["certain", "likely"]
KINDS = ("serial", "pcsc", "camera", "cups", "sane")  # what detect looks at, in the order it reports


@dataclass
class Finding:
    """A device that answered: which class and driver, the parameters to configure it, why."""

    kind: str  # one of KINDS
    device_class: str  # as in config: idcard, receipt_printer, qr_scanner, smartcard, camera, a4_printer, scanner
    driver: str
    params: dict[str, Any]
    where: str  # in a technician's words: "/dev/ttyUSB0", "reader 'ACS ACR39U 00 00'", "queue KioskA4 on ..."
    evidence: str  # what answered, how
    confidence: Confidence = "certain"
    facts: dict[str, Any] = field(default_factory=dict)  # what was measured: picture size, baud rate, ...

    def as_json(self) -> dict[str, Any]:
        return {"class": self.device_class, "driver": self.driver, "params": dict(self.params),
                "where": self.where, "evidence": self.evidence, "confidence": self.confidence,
                "facts": dict(self.facts)}


@dataclass
class Problem:
    """Something that kept a device from being found, with what to do about it."""

    kind: str
    where: str
    message: str

    def as_json(self) -> dict[str, str]:
        return {"kind": self.kind, "where": self.where, "message": self.message}


PortState = Literal["receipt_printer", "idcard", "qr_scanner", "garbage", "silent", "in_use", "console",
                    "cannot_open"]


@dataclass
class PortReport:
    """What one serial port did when probed."""

    port: str
    state: PortState
    detail: str
    named: bool = False  # given with --port (not found by looking at /dev)
    baudrate: int | None = None
    received: bytes = b""  # unrecognised bytes (garbage), for the report's hex

    def as_json(self) -> dict[str, Any]:
        return {"port": self.port, "state": self.state, "detail": self.detail, "named": self.named,
                "baudrate": self.baudrate}


@dataclass
class Results:
    findings: list[Finding] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)
    ports: list[PortReport] = field(default_factory=list)

    def add(self, other: Results) -> None:
        self.findings += other.findings
        self.problems += other.problems
        self.ports += other.ports


# -- who holds a device file ---------------------------------------------------------------------
@dataclass(frozen=True)
class Holder:
    pid: int
    command: str

    def __str__(self) -> str:
        return f"PID {self.pid} ({self.command})" if self.command else f"PID {self.pid}"


def _command_line(pid: str) -> str:
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return ""
    words = [w.decode("utf-8", "replace") for w in raw.split(b"\0") if w]
    text = " ".join(words)
    return text if len(text) <= 80 else text[:77] + "..."


def _pty_index(pid: str, fd: str) -> int | None:
    try:
        for line in Path(f"/proc/{pid}/fdinfo/{fd}").read_text().splitlines():
            if line.startswith("tty-index:"):
                return int(line.split(":", 1)[1])
    except (OSError, ValueError):
        pass
    return None


def holders(paths: list[str]) -> dict[str, list[Holder]]:
    """For each device path (resolved), the other processes that have it open, as /proc shows
    them. For a pseudo-terminal (/dev/pts/N) the process on its master side (an emulator,
    socat: the "device" end of the line) is not a user and is left out. Processes /proc does
    not let us look into are missed (run as root to see them all)."""
    wanted = {os.path.realpath(p): p for p in paths}
    found: dict[str, set[str]] = {p: set() for p in wanted}
    pty_masters: dict[int, set[str]] = {}
    me = str(os.getpid())
    try:
        pids = [d for d in os.listdir("/proc") if d.isdigit() and d != me]
    except OSError:
        return {p: [] for p in paths}
    for pid in pids:
        try:
            fds = os.listdir(f"/proc/{pid}/fd")
        except OSError:
            continue
        for fd in fds:
            try:
                target = os.readlink(f"/proc/{pid}/fd/{fd}")
            except OSError:
                continue
            if target in found:
                found[target].add(pid)
            elif os.path.basename(target) == "ptmx":
                index = _pty_index(pid, fd)
                if index is not None:
                    pty_masters.setdefault(index, set()).add(pid)
    out: dict[str, list[Holder]] = {}
    for real, original in wanted.items():
        pids_here = found[real]
        if real.startswith("/dev/pts/") and real[9:].isdigit():
            pids_here = pids_here - pty_masters.get(int(real[9:]), set())
        out[original] = [Holder(int(pid), _command_line(pid)) for pid in sorted(pids_here, key=int)]
    return out


def consoles() -> set[str]:
    """Names of the terminals the kernel writes its console to (ttyS0, tty0, ...)."""
    names: set[str] = set()
    try:
        names.update(Path("/sys/class/tty/console/active").read_text().split())
    except OSError:
        pass
    try:
        for line in Path("/proc/consoles").read_text().splitlines():
            if line.split():
                names.add(line.split()[0])
    except OSError:
        pass
    return names


def stable_name(device: str, folders: tuple[str, ...]) -> str:
    """A udev link that points at `device` (/dev/serial/by-id/..., /dev/v4l/by-id/...), which
    stays right across reboots and re-plugging; the device itself when there is none."""
    real = os.path.realpath(device)
    for folder in folders:
        try:
            names = sorted(os.listdir(folder))
        except OSError:
            continue
        for name in names:
            link = os.path.join(folder, name)
            if os.path.realpath(link) == real:
                return link
    return device
