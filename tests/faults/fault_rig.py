"""The fault matrix's test bench: one headless Terminal with every device on its emulator, its
fleet agent on a private mosquitto, and a help-desk console that records every up/ message.

Built once per test module (it takes a few seconds: pcscd, cupsd, a camera and a broker), so a
fault test breaks one thing on a running terminal, waits for it to recover by itself, and checks
that the help desk saw it. Imported by name (tests/faults has no __init__.py; pytest puts the
folder on sys.path). Shared by tests/faults/test_device_faults.py and test_process_faults.py:

    with running_platform(tmp / "platform") as server, running_broker(tmp) as broker:
        enrol_at(server, tmp / "kiosk" / "data")          # the terminal's key, before it starts
        with running_rig(tmp / "kiosk", broker, platform_url=server.url) as rig:
            mark = rig.console.mark()
            rig.unplug("receipt_printer")                  # rig.reset() puts back what is left out
            rig.console.wait_alert("receipt_printer.device_offline", "raised", after=mark)

Without `platform_url` the terminal runs on the platform's catalogue with no platform (visits end
"not submitted", nothing prints). tests/platform's `faultproxy.FaultProxy` can stand between them
(`use_platform_helpers()` makes it importable; give `enrol_at` the proxy's URL too). `LogTrap`
keeps the terminal's warnings and errors; `Resources` counts the process's threads and fds.
"""
from __future__ import annotations

import json
import logging
import os
import re
import secrets
import shutil
import subprocess
import sys
import tempfile
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from terminal_config import TERMINAL, write_config
from waiting import wait_for

from config.loader import load_config
from devices.base import DeviceState
from fleet import protocol
from fleet.broker import Broker
from fleet.client import FleetAccount, make_client
from govapi.signing import KeyPair
from kiosk.terminal import Terminal
from kiosk.visit import Step

ROOT = Path(__file__).resolve().parents[2]
WAIT_S = 30.0  # generous: a loaded 2-core machine; never a timing assertion
ALL_DEVICES = ("idcard", "smartcard", "camera", "receipt_printer", "a4_printer", "scanner", "qr_scanner")
# the TOML lines that put each device on its emulator, light on the CPU (no receipt PNGs, a slow
# document camera)
EMULATED = {
    "idcard": "emulate = true",
    "smartcard": "emulate = true",
    "camera": "emulate = true\n[devices.camera.emulator]\nfps = 10",
    "receipt_printer": "emulate = true\n[devices.receipt_printer.emulator]\nrender = false",
    "a4_printer": "emulate = true\njob_timeout_s = 60",
    "scanner": "emulate = true\n[devices.scanner.emulator]\nfps = 2",
    "qr_scanner": "emulate = true",
}


# -- the help desk's side ----------------------------------------------------------------------------
class Console:
    """The help desk as the console sees the fleet channel: every terminal's up/ messages, in
    order (from tests/fleet/test_fleet_agent.py's Console, reading only)."""

    def __init__(self, broker: Broker) -> None:
        self.messages: list[tuple[str, str, dict[str, Any]]] = []  # terminal, kind, payload
        self.raw: list[bytes] = []
        self._lock = threading.Lock()
        self._subscribed = threading.Event()
        account = broker.console_account()
        self.client = make_client(account, f"console-{secrets.token_hex(3)}")
        self.client.on_connect = lambda c, _u, _f, _rc, _p: c.subscribe("kiosk/+/up/#", qos=1)
        self.client.on_subscribe = lambda *_a: self._subscribed.set()
        self.client.on_message = self._on_message
        self.client.connect(account.host, account.port, keepalive=30)
        self.client.loop_start()
        assert self._subscribed.wait(WAIT_S), "the console did not subscribe"

    def _on_message(self, _c: Any, _u: Any, msg: Any) -> None:
        terminal, _direction, kind = protocol.parse_topic(msg.topic)
        with self._lock:
            self.raw.append(bytes(msg.payload))
            self.messages.append((terminal, kind, protocol.decode(msg.payload)))

    def mark(self) -> int:
        """Where "from now on" starts, for `find`/`wait`'s `after`."""
        with self._lock:
            return len(self.messages)

    def all(self, kind: str, *, after: int = 0, terminal: str = TERMINAL) -> list[dict[str, Any]]:
        with self._lock:
            return [p for term, k, p in self.messages[after:] if term == terminal and k == kind]

    def find(self, kind: str, match: Callable[[dict[str, Any]], bool] = lambda _p: True, *,
             after: int = 0, terminal: str = TERMINAL) -> dict[str, Any] | None:
        return next((p for p in self.all(kind, after=after, terminal=terminal) if match(p)), None)

    def wait(self, kind: str, match: Callable[[dict[str, Any]], bool] = lambda _p: True, *, after: int = 0,
             terminal: str = TERMINAL, timeout: float = WAIT_S, what: str = "") -> dict[str, Any]:
        return wait_for(lambda: self.find(kind, match, after=after, terminal=terminal),
                        what or f"{kind} from {terminal}", timeout)

    def alerts(self, *, after: int = 0, terminal: str = TERMINAL) -> list[tuple[str, str]]:
        """(alert id, "raised"|"cleared") in the order the help desk got them."""
        return [(p["id"], p["state"]) for p in self.all("alert", after=after, terminal=terminal)]

    def wait_alert(self, alert_id: str, state: str, *, after: int = 0, terminal: str = TERMINAL,
                   timeout: float = WAIT_S) -> dict[str, Any]:
        """The help desk got alert `alert_id` in `state` ("raised" or "cleared") after `after`."""
        return self.wait("alert", lambda p: p["id"] == alert_id and p["state"] == state, after=after,
                         terminal=terminal, timeout=timeout,
                         what=f"alert {alert_id} {state} at the help desk (got {self.alerts(after=after)})")

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


@contextmanager
def running_broker(folder: Path) -> Iterator[Broker]:
    """A private mosquitto (TLS on 127.0.0.1, its own CA and accounts), stopped afterwards."""
    if shutil.which("mosquitto", path="/usr/sbin:/usr/bin") is None:
        raise RuntimeError("mosquitto is not installed: bash scripts/setup.sh installs it")
    broker = Broker(folder / "broker").start()
    try:
        yield broker
    finally:
        broker.stop()


def fleet_environ(broker: Broker, account: FleetAccount, secret_dir: Path, console_key: KeyPair) -> dict[str, str]:
    """The KIOSK__FLEET__* settings of a terminal on `broker` (a 1 s heartbeat: alerts show fast)."""
    secret_dir.mkdir(parents=True, exist_ok=True)
    password = secret_dir / "fleet-password"
    password.write_text(account.password + "\n", encoding="utf-8")
    password.chmod(0o600)
    return {"KIOSK__FLEET__ENABLED": "true", "KIOSK__FLEET__BROKER_HOST": json.dumps(broker.host),
            "KIOSK__FLEET__BROKER_PORT": str(broker.port), "KIOSK__FLEET__CA_FILE": json.dumps(broker.ca_file),
            "KIOSK__FLEET__PASSWORD_FILE": json.dumps(str(password)),
            "KIOSK__FLEET__CONSOLE_PUBLIC_KEY": json.dumps(console_key.public_key),
            "KIOSK__FLEET__HEARTBEAT_S": "1.0", "KIOSK__FLEET__KEEPALIVE_S": "5"}


# -- what the terminal logged ------------------------------------------------------------------------
class LogTrap(logging.Handler):
    """Keeps every WARNING and above the terminal logs (root logger), so a test can say which
    errors were faults it caused and find any other one."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.records: list[logging.LogRecord] = []
        self._guard = threading.Lock()

    def emit(self, record: logging.LogRecord) -> None:
        with self._guard:
            self.records.append(record)

    def mark(self) -> int:
        with self._guard:
            return len(self.records)

    def since(self, mark: int = 0) -> list[logging.LogRecord]:
        with self._guard:
            return list(self.records[mark:])

    def unexpected(self, mark: int = 0, expected: tuple[str, ...] = ()) -> list[str]:
        """ERROR records with a traceback, or any CRITICAL, whose message and exception match
        none of the `expected` regular expressions: each as "logger: message | exception"."""
        found = []
        for record in self.since(mark):
            if record.levelno < logging.ERROR or (record.exc_info is None and record.levelno < logging.CRITICAL):
                continue
            text = f"{record.name}: {record.getMessage()}"
            if record.exc_info and record.exc_info[1] is not None:
                text += f" | {type(record.exc_info[1]).__name__}: {record.exc_info[1]}"
            if not any(re.search(pattern, text) for pattern in expected):
                found.append(text)
        return found


# -- the process's resources ------------------------------------------------------------------------------
def fd_targets() -> tuple[str, ...]:
    """What each descriptor is open on (sockets and pipes by kind): which of them grew."""
    targets = []
    for fd in os.listdir("/proc/self/fd"):
        try:
            target = os.readlink(f"/proc/self/fd/{fd}")
        except OSError:
            continue
        targets.append(target.split("[")[0] if target.startswith(("socket:", "pipe:", "anon_inode:")) else target)
    return tuple(sorted(targets))


def thread_names() -> list[str]:
    return sorted(t.name for t in threading.enumerate())


@dataclass(frozen=True)
class Resources:
    """A snapshot of this process's threads and file descriptors."""

    names: tuple[str, ...]  # the threads
    targets: tuple[str, ...]  # the descriptors

    @property
    def threads(self) -> int:
        return len(self.names)

    @property
    def fds(self) -> int:
        return len(self.targets)

    @classmethod
    def now(cls) -> Resources:
        return cls(tuple(thread_names()), fd_targets())


# -- the rig ------------------------------------------------------------------------------------------------
@dataclass
class FaultRig:
    terminal: Terminal
    console: Console
    broker: Broker
    data_dir: Path
    log: LogTrap
    console_key: KeyPair
    a4_dir: Path | None = None
    baseline: Resources | None = None
    unplugged: set[str] = field(default_factory=set)  # devices a test pulled and has not put back
    _stopped: bool = field(default=False, repr=False)

    # -- where things are
    def emulator(self, name: str) -> Any:
        return self.terminal.emulators[name]

    def device(self, name: str) -> Any:
        return self.terminal.devices[name]

    @property
    def visit(self) -> Any:
        return self.terminal.visit

    def state(self, name: str) -> DeviceState:
        return self.device(name).status().device

    # -- faults
    def unplug(self, name: str) -> None:
        """Pull the device's cable (for the A4 printer: its cupsd stops; for the smart-card
        reader: pcscd restarts without the virtual reader). `reset()` puts back what a failed
        test left pulled."""
        self.emulator(name).unplug()
        self.unplugged.add(name)

    def replug(self, name: str) -> None:
        self.emulator(name).replug()
        self.unplugged.discard(name)

    def alive(self) -> list[str]:
        """What of the terminal's own machinery is not running (empty: nothing crashed)."""
        dead = []
        supervisor = self.terminal.supervisor
        if supervisor is None or supervisor._thread is None or not supervisor._thread.is_alive():
            dead.append("the device supervisor")
        fleet = self.terminal.fleet
        if fleet is None or fleet._worker is None or not fleet._worker.is_alive():
            dead.append("the fleet agent's worker")
        elif not fleet.connected:
            dead.append("the fleet agent's connection")
        return dead

    # -- waiting for the terminal
    def wait_state(self, name: str, *states: DeviceState, timeout: float = WAIT_S) -> None:
        wait_for(lambda: self.state(name) in states,
                 f"{name} {'/'.join(s.value for s in states)} (it is {self.state(name).value}: "
                 f"{self.device(name).status().fault})", timeout)

    def wait_online(self, *names: str, timeout: float = WAIT_S) -> None:
        """The named devices (all when none are named) are online (or busy) again."""
        for name in names or tuple(self.terminal.devices):
            self.wait_state(name, DeviceState.ONLINE, DeviceState.BUSY, timeout=timeout)

    def wait_step(self, step: Step, timeout: float = WAIT_S, message: str | None = None) -> Any:
        def there() -> Any:
            view = self.visit.view()
            return view if view.step is step and (message is None or view.message_key == message) else None

        return wait_for(there, f"the visit on {step.value}" + (f" with {message}" if message else "")
                        + f" (it is on {self.visit.step.value}, notice {self.visit.view().message_key})", timeout)

    def quiet_alerts(self, timeout: float = WAIT_S) -> None:
        """No device alert is active at the help desk's last `devices` message."""
        def quiet() -> bool:
            latest = self.console.all("devices")
            return bool(latest) and not [a for a in latest[-1]["alerts"] if a["id"] != "command.refused"]

        wait_for(quiet, "no device alert active at the help desk", timeout)

    def reset(self) -> None:
        """Back to a terminal at rest: no visit, no card in any reader, every device online, and
        the help desk shown no device alert (a test starts from here)."""
        for name in sorted(self.unplugged):
            self.replug(name)
        for name in ("idcard", "smartcard"):
            emulator = self.terminal.emulators.get(name)
            if emulator is not None:
                emulator.remove_card()
        if "camera" in self.terminal.emulators:
            self.emulator("camera").person()  # the cooperative test person in front of it
        if self.visit.step is not Step.ATTRACT:
            self.visit.wipe("test")
        for thread in list(self.terminal.handout.threads) + list(self.terminal.checkin.threads):
            thread.join(WAIT_S)  # a print or a check-in still going on ends first
        self.wait_online()
        wait_for(lambda: not self.visit.card_present, "the readers saw the cards taken out")
        self.quiet_alerts()
        if self.visit.view().message_key is not None:  # "take your card back", a refused code
            self.visit.wipe("test")

    def stop(self) -> None:
        if self._stopped:
            return
        self._stopped = True
        root = logging.getLogger()
        try:
            self.terminal.stop()
        finally:
            self.console.close()
            root.removeHandler(self.log)
            if self.a4_dir is not None:
                shutil.rmtree(self.a4_dir, ignore_errors=True)


def start_rig(folder: Path, broker: Broker, *, devices: tuple[str, ...] = ALL_DEVICES, face: bool = False,
              platform_url: str = "", environ: dict[str, str] | None = None,
              speaker: Any = None, terminal_id: str = TERMINAL) -> FaultRig:
    """Start one terminal on emulated `devices` (the rest disabled) with its fleet agent on
    `broker`, and a console; returns when the agent is connected and every device is online.

    `face`: the face check (人证核验) on the emulated camera is part of each visit; tests can
    still turn it off for one visit with `rig.visit.face_required = False`.
    `platform_url`: "" runs on the local catalogue; a URL needs the terminal enrolled there
    first (`enrol`). `environ`: more KIOSK__* settings."""
    folder.mkdir(parents=True, exist_ok=True)
    lines = {name: EMULATED[name] for name in devices}
    a4_dir = None
    if "a4_printer" in devices:  # CUPS runs its filters as user lp: a folder lp can enter
        a4_dir = Path(tempfile.mkdtemp(prefix="kiosk-faults-a4-", dir="/tmp"))
        a4_dir.chmod(0o711)
        lines["a4_printer"] += f'\n[devices.a4_printer.emulator]\ndirectory = "{a4_dir / "cups"}"'
    config_file = write_config(folder, lines)
    if terminal_id != TERMINAL:
        text = config_file.read_text(encoding="utf-8").replace(f'id = "{TERMINAL}"', f'id = "{terminal_id}"')
        config_file.write_text(text, encoding="utf-8")
    console_key = KeyPair.generate()
    account = broker.add_terminal(terminal_id)
    env = {"KIOSK__PLATFORM__URL": json.dumps(platform_url), "KIOSK__FACE__ENABLED": json.dumps(face),
           "KIOSK__VOICE__ENABLED": "false", "KIOSK__PLATFORM__TIMEOUT_S": "2",
           "KIOSK__PLATFORM__DELIVERY_INTERVAL_S": "0.3",
           **fleet_environ(broker, account, folder / "secret", console_key), **(environ or {})}
    cfg = load_config(config_file, environ=env)
    trap = LogTrap()
    logging.getLogger().addHandler(trap)
    console = Console(broker)
    try:
        terminal = Terminal(cfg, speaker=speaker)
        if not platform_url:  # the reference platform's catalogue, with its certificates and materials
            from govplatform.catalogue import load_catalogue
            from kiosk.catalogue import Catalogue

            terminal.visit.replace_catalogue(Catalogue.from_platform(load_catalogue()))
    except BaseException:
        console.close()
        logging.getLogger().removeHandler(trap)
        raise
    rig = FaultRig(terminal, console, broker, terminal.data_dir, trap, console_key, a4_dir)
    try:
        terminal.start()
        assert terminal.fleet is not None and terminal.fleet.wait_connected(WAIT_S), "the fleet agent did not connect"
        missing = [n for n in devices if n not in terminal.devices]
        assert not missing, f"emulators did not start: {missing} (see the log: {rig.log.since()[-3:]})"
        rig.wait_online()
        rig.quiet_alerts()
    except BaseException:
        rig.stop()
        raise
    return rig


@contextmanager
def running_rig(folder: Path, broker: Broker, **kwargs: Any) -> Iterator[FaultRig]:
    rig = start_rig(folder, broker, **kwargs)
    try:
        yield rig
    finally:
        rig.stop()


# -- a platform for the terminal ------------------------------------------------------------------------------
@contextmanager
def running_platform(folder: Path, **settings: str) -> Iterator[Any]:
    """The reference platform as its own process (tests/platform's harness: a free port on
    127.0.0.1, its own database in `folder`); yields its `Server` and stops exactly it."""
    use_platform_helpers()
    from govplatform_harness import start_server

    server_gen = start_server(folder, **settings)
    server = next(server_gen)
    try:
        yield server
    finally:
        server_gen.close()


def enrol_at(server: Any, data_dir: Path, terminal_id: str = TERMINAL, url: str = "") -> None:
    """Enrol the terminal whose state will be in `data_dir` (a rig's `folder / "data"`) with
    `server` (reached at `url`, e.g. a FaultProxy's, when given)."""
    code = server.cli("enrolment-code", "--terminal-id", terminal_id).stdout.strip()
    enrol(data_dir, url or server.url, code, terminal_id)


def use_platform_helpers() -> None:
    """Make tests/platform's harness importable (`govplatform_harness.start_server`, `faultproxy`)."""
    path = str(ROOT / "tests" / "platform")
    if path not in sys.path:
        sys.path.append(path)


def enrol(data_dir: Path, platform_url: str, enrolment_code: str, terminal_id: str = TERMINAL) -> None:
    """`python -m provisioning enrol` for a terminal whose state is in `data_dir`: its key pair,
    registered with the platform (what a technician does before the terminal serves anyone)."""
    env = {"KIOSK__TERMINAL__ID": terminal_id, "KIOSK__TERMINAL__DATA_DIR": str(data_dir),
           "KIOSK__PLATFORM__URL": platform_url, "PATH": "/usr/bin:/bin"}
    done = subprocess.run([sys.executable, "-m", "provisioning", "enrol", "--code", enrolment_code], cwd=ROOT,
                          env=env, capture_output=True, text=True, timeout=120, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"enrolment failed: {done.stdout}{done.stderr}")
