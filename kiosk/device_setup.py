"""Where a terminal's devices and state are: emulators started as the terminal does, the
terminal's files on disk, and whether the kiosk is running.

Shared by the terminal (kiosk/terminal.py starts its emulators here), the technician's
commands (`python -m provisioning selftest`, `diagnose`, `reset`) and the maintenance
screen, so they agree on which emulator serves a device and which files are the
terminal's. No Kivy, no argparse.
"""
from __future__ import annotations

import inspect
import logging
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from config.schema import DeviceSection, KioskConfig
from devices import registry

log = logging.getLogger(__name__)

ROOT = Path(__file__).resolve().parent.parent  # a relative terminal.data_dir is inside this checkout
PID_FILE = "run/kiosk.pid"  # inside terminal.data_dir: written by a kiosk service that keeps one


class EmulatorNotStarted(Exception):
    """A device's emulator could not start; `str()` says why (the device is left out)."""


# -- emulators -------------------------------------------------------------------------------------
def start_emulator(name: str, dev_cfg: DeviceSection, run_dir: Path, params: dict[str, Any]) -> Any:
    """Start the emulator of a device with `emulate = true` and point `params` (the driver's
    parameters, changed in place) at it; returns the running emulator.

    Pseudo-terminal emulators get a stable link `run_dir/<name>.tty` (so the driver finds the
    reader again after a replug) unless their options name a link or a TCP port. Raises
    EmulatorNotStarted when the emulator cannot be built or started."""
    emulator_cls = registry.emulator_class(dev_cfg.device_class, dev_cfg.driver)
    options = dict(dev_cfg.emulator)
    if "link" in inspect.signature(emulator_cls).parameters and not (
            options.get("link") or options.get("tcp_port") is not None):
        # a stable path, so the driver finds the reader again after a replug
        options["link"] = str(run_dir / f"{name}.tty")
    try:
        emulator = emulator_cls(**options)
        # the driver parameter that names where the device is (a tty, a URL, ...)
        address = emulator.start()
    except Exception as exc:
        raise EmulatorNotStarted(str(exc) or type(exc).__name__) from exc
    # what the emulator dictates (its queue name, its photo encoding, no paper
    # transport time): a terminal's own value for real hardware does not apply
    params.update(getattr(emulator_cls, "DRIVER_DEFAULTS", {}))
    driver_params = getattr(registry.driver_class(dev_cfg.device_class, dev_cfg.driver), "Params", None)
    if (isinstance(getattr(emulator, "fps", None), (int, float))
            and "fps" in getattr(driver_params, "model_fields", {})):
        params["fps"] = emulator.fps  # a camera emulator set slower (to spare the CPU) is not a fault
    params[getattr(emulator_cls, "ADDRESS_PARAM", "port")] = address
    log.info("%s: emulated %s on %s", name, dev_cfg.driver, address)
    return emulator


def start_emulators(cfg: KioskConfig, names: Iterable[str], run_dir: Path
                    ) -> tuple[dict[str, Any], dict[str, dict[str, Any]], dict[str, str]]:
    """Start the emulators of `names` (whatever their `emulate` setting): the running emulators,
    the driver parameters pointed at each, and the reason for each that did not start."""
    emulators: dict[str, Any] = {}
    params: dict[str, dict[str, Any]] = {}
    failed: dict[str, str] = {}
    for name in names:
        dev_cfg = cfg.devices[name]
        device_params = dev_cfg.driver_params()
        try:
            emulators[name] = start_emulator(name, dev_cfg, run_dir, device_params)
        except (EmulatorNotStarted, registry.UnknownDriver) as exc:
            failed[name] = f"the {dev_cfg.driver} emulator did not start: {exc}"
            continue
        params[name] = device_params
    return emulators, params, failed


def stop_emulators(emulators: Mapping[str, Any]) -> None:
    for name, emulator in emulators.items():
        try:
            emulator.stop()
        except Exception as exc:  # stopping one must not keep the others running
            log.warning("%s: the emulator did not stop cleanly: %s", name, exc)


# -- the terminal's files ----------------------------------------------------------------------------
@dataclass(frozen=True)
class TerminalPaths:
    """The terminal's own files, resolved as the terminal resolves them (kiosk/platform_link.py):
    a relative data_dir is inside the checkout, other relative paths are inside data_dir."""

    data_dir: Path
    key_file: Path
    outbox_db: Path
    outbox_key_file: Path
    log_file: Path
    cache_dir: Path
    run_dir: Path
    pid_file: Path

    @property
    def outbox_files(self) -> list[Path]:
        """The database and SQLite's companions (write-ahead log, shared memory, journal)."""
        return [self.outbox_db] + [self.outbox_db.with_name(self.outbox_db.name + s)
                                   for s in ("-wal", "-shm", "-journal")]

    def inside(self, value: str) -> Path:
        path = Path(value)
        return path if path.is_absolute() else self.data_dir / path


def data_dir_of(cfg: KioskConfig, root: Path = ROOT) -> Path:
    data_dir = Path(cfg.terminal.data_dir)
    return data_dir if data_dir.is_absolute() else root / data_dir


def terminal_paths(cfg: KioskConfig, root: Path = ROOT) -> TerminalPaths:
    data_dir = data_dir_of(cfg, root)

    def inside(value: str) -> Path:
        path = Path(value)
        return path if path.is_absolute() else data_dir / path

    return TerminalPaths(
        data_dir=data_dir,
        key_file=inside(cfg.platform.key_file),
        outbox_db=inside(cfg.platform.outbox_db),
        outbox_key_file=inside(cfg.platform.outbox_key_file),
        log_file=inside(cfg.logging.file),
        cache_dir=data_dir / "cache",
        run_dir=data_dir / "run",
        pid_file=data_dir / PID_FILE,
    )


# -- who holds what --------------------------------------------------------------------------------
@dataclass(frozen=True)
class Holder:
    pid: int
    command: str  # the process's command line, shortened

    def describe(self) -> str:
        return f"process {self.pid} ({self.command})" if self.command else f"process {self.pid}"


def _command(pid: int) -> str:
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return ""
    text = raw.replace(b"\0", b" ").decode("utf-8", "replace").strip()
    return text if len(text) <= 80 else text[:77] + "..."


def processes_holding(paths: Iterable[Path]) -> dict[Path, list[Holder]]:
    """Which other processes have each file open (Linux /proc; processes of other users are
    only seen when running as root). Paths are compared after resolving symlinks."""
    wanted: dict[str, Path] = {}
    for path in paths:
        try:
            wanted[os.path.realpath(path)] = path
        except OSError:
            continue
    found: dict[Path, list[Holder]] = {p: [] for p in wanted.values()}
    if not wanted:
        return found
    me = os.getpid()
    try:
        pids = [int(e) for e in os.listdir("/proc") if e.isdigit()]
    except OSError:
        return found
    for pid in pids:
        if pid == me:
            continue
        try:
            fds = os.listdir(f"/proc/{pid}/fd")
        except OSError:  # gone, or another user's (not root)
            continue
        seen: set[Path] = set()
        for fd in fds:
            try:
                target = os.readlink(f"/proc/{pid}/fd/{fd}")
            except OSError:
                continue
            held = wanted.get(target)
            if held is not None and held not in seen:
                seen.add(held)
                found[held].append(Holder(pid, _command(pid)))
    return found


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # exists, another user's
    return True


def running_kiosk(paths: TerminalPaths) -> list[Holder]:
    """The kiosk processes running on this terminal's data: the live pid in the pid file
    (run/kiosk.pid in data_dir), and any other process holding its outbox database or its
    log file open (the kiosk keeps both open while it runs)."""
    holders: dict[int, Holder] = {}
    try:
        pid = int(paths.pid_file.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        pid = 0
    if pid > 0 and pid != os.getpid() and _pid_alive(pid):
        holders[pid] = Holder(pid, _command(pid))
    held = processes_holding([p for p in paths.outbox_files + [paths.log_file] if p.exists()])
    for found in held.values():
        for holder in found:
            holders.setdefault(holder.pid, holder)
    return list(holders.values())


def device_address(dev_cfg: DeviceSection, params: Mapping[str, Any] | None = None) -> Path | None:
    """The local device file a device's driver opens (a serial port, a camera), or None when it
    has none (a network address, a CUPS queue, a PC/SC reader name)."""
    params = dev_cfg.driver_params() if params is None else params
    for key in ("port", "source"):
        value = params.get(key)
        if isinstance(value, int) and not isinstance(value, bool) and key == "source":
            return Path(f"/dev/video{value}")
        if isinstance(value, str) and value.startswith("/"):
            return Path(value)
    return None


# -- the outbox, counted without opening its payloads -------------------------------------------------
class OutboxUnreadable(Exception):
    """The outbox database exists but cannot be read; `str()` says why."""


def outbox_counts(db_path: Path) -> dict[str, dict[str, int]]:
    """Entries by state and kind ({"pending": {"application": 2}, "delivered": {...}}), read
    from the database without its key: no payload is opened and nothing is created. {} when
    there is no outbox database."""
    import sqlite3

    if not db_path.is_file():
        return {}
    try:
        db = sqlite3.connect(db_path, timeout=5)
    except sqlite3.Error as exc:
        raise OutboxUnreadable(f"outbox database {db_path} cannot be opened ({exc})") from None
    try:
        db.execute("PRAGMA query_only=ON")
        rows = db.execute("SELECT state, kind, COUNT(*) FROM outbox GROUP BY state, kind").fetchall()
    except sqlite3.Error as exc:
        raise OutboxUnreadable(f"outbox database {db_path} cannot be read ({exc})") from None
    finally:
        db.close()
    counts: dict[str, dict[str, int]] = {}
    for state, kind, n in rows:
        counts.setdefault(str(state), {})[str(kind)] = int(n)
    return counts


def undelivered(counts: Mapping[str, Mapping[str, int]]) -> dict[str, int]:
    """Entries not delivered (pending, rejected, any other state), by kind."""
    out: dict[str, int] = {}
    for state, kinds in counts.items():
        if state == "delivered":
            continue
        for kind, n in kinds.items():
            out[kind] = out.get(kind, 0) + n
    return out
