"""What the process fault tests run against: the real platform behind a fault proxy, a real
fleet broker with a help-desk subscriber, and kiosk processes started, killed and restarted.

Reused from tests/platform (not copied): `govplatform_harness.start_server` (the platform
process) and `faultproxy.FaultProxy` (down, slow, 5xx, hold). The proxy's release event is
replaced by a `Gate` that counts who waits on it, so a test knows the exact moment a request
is held *before* the platform saw it (mode "slow") or *after* the platform committed it and
before its answer reached the kiosk (mode "hold").

Kiosk processes are either `process_driver.py` (the terminal, driven one scenario step at a
time) or `main.py --headless` (the product's own entry point), both on the same data folder
and configuration: the test plays systemd's part (Restart=always) and nothing else.
"""
from __future__ import annotations

import datetime
import json
import os
import re
import secrets
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
_PLATFORM_TESTS = ROOT / "tests" / "platform"
if str(_PLATFORM_TESTS) not in sys.path:  # the platform tests' helpers are plain modules there
    sys.path.insert(0, str(_PLATFORM_TESTS))

# re-exported: the tests import them from here (this module puts tests/platform on the path)
from faultproxy import FaultProxy  # noqa: E402
from govplatform_harness import Server, start_server  # noqa: E402,F401

from fleet import protocol  # noqa: E402
from fleet.broker import Broker  # noqa: E402
from fleet.client import make_client  # noqa: E402

WAIT_S = 30.0  # generous on a loaded 2-core machine; never a timing assertion
DRIVER = ROOT / "tests" / "faults" / "process_driver.py"
LOCATION = "测试网点 / fault bench"
SERVICE = "social-insurance-record"


def wait_for(condition: Callable[[], Any], what: str, timeout_s: float = WAIT_S) -> Any:
    """The condition's first true value; AssertionError naming `what` after the deadline."""
    deadline = time.monotonic() + timeout_s
    while True:
        value = condition()
        if value:
            return value
        assert time.monotonic() < deadline, f"{what}: not within {timeout_s:.0f} s"
        time.sleep(0.05)


# -- the platform behind the fault proxy ----------------------------------------------------------
class Gate(threading.Event):
    """FaultProxy's release event that also counts the requests waiting on it: in mode "slow"
    they wait before being relayed (the platform has not seen them), in mode "hold" after
    (the platform has committed, the answer is held)."""

    def __init__(self) -> None:
        super().__init__()
        self._count = threading.Condition()
        self.arrived = 0

    def wait(self, timeout: float | None = None) -> bool:
        with self._count:
            self.arrived += 1
            self._count.notify_all()
        return super().wait(timeout)

    def wait_arrivals(self, count: int, timeout_s: float = WAIT_S) -> bool:
        with self._count:
            return self._count.wait_for(lambda: self.arrived >= count, timeout_s)


def fault_proxy(server: Server) -> tuple[FaultProxy, Gate, str]:
    gate = Gate()
    proxy = FaultProxy(int(server.url.rsplit(":", 1)[1]), _released=gate)
    return proxy, gate, proxy.start()


def applications(server: Server, terminal_id: str) -> list[tuple[str, str, str]]:
    """(receipt number, visit id, terminal receipt) of every application of this terminal, as the
    platform's own database holds them."""
    from sqlalchemy import create_engine, text

    engine = create_engine(server.db_url)
    try:
        with engine.connect() as conn:
            rows = conn.execute(text("SELECT receipt_number, visit_id, terminal_receipt FROM applications "
                                     "WHERE terminal_id = :t"), {"t": terminal_id}).all()
    finally:
        engine.dispose()
    return [(str(r[0]), str(r[1]), str(r[2] or "")) for r in rows]


def enrol(server: Server, url: str, terminal_id: str, data_dir: Path) -> None:
    """What `python -m provisioning enrol` does, in this process (faster than its own process):
    a key pair registered with the platform, and the catalogue kept."""
    from govapi.signing import KeyPair
    from kiosk.govclient import PlatformClient
    from kiosk.platform_link import catalogue_cache, keep_catalogue

    keys = KeyPair.generate()
    client = PlatformClient(url, terminal_id, keys, timeout_s=10, retries=1)
    client.enrol(server.enrolment_code(terminal_id), LOCATION)
    key_file = data_dir / "keys" / "terminal.key"
    key_file.parent.mkdir(parents=True, mode=0o700, exist_ok=True)
    keys.save(key_file)
    keep_catalogue(catalogue_cache(data_dir), client.catalogue())


# -- the help desk ---------------------------------------------------------------------------------
class HelpDesk:
    """The console's side of the fleet channel: every terminal's up messages, in order."""

    def __init__(self, broker: Broker) -> None:
        self.messages: list[tuple[str, str, dict[str, Any]]] = []  # terminal, kind, payload
        self._lock = threading.Lock()
        subscribed = threading.Event()
        account = broker.console_account()
        self.client = make_client(account, f"faults-desk-{secrets.token_hex(3)}")
        self.client.on_connect = lambda c, _u, _f, _rc, _p: c.subscribe("kiosk/+/up/#", qos=1)
        self.client.on_subscribe = lambda *_a: subscribed.set()
        self.client.on_message = self._on_message
        self.client.connect(account.host, account.port, keepalive=30)
        self.client.loop_start()
        assert subscribed.wait(WAIT_S), "the help desk did not subscribe"

    def _on_message(self, _c: Any, _u: Any, msg: Any) -> None:
        terminal, _direction, kind = protocol.parse_topic(msg.topic)
        with self._lock:
            self.messages.append((terminal, kind, protocol.decode(msg.payload)))

    def mark(self) -> int:
        with self._lock:
            return len(self.messages)

    def find(self, terminal: str, kind: str, match: Callable[[dict[str, Any]], bool] = lambda _p: True, *,
             after: int = 0) -> dict[str, Any] | None:
        with self._lock:
            for term, k, payload in self.messages[after:]:
                if term == terminal and k == kind and match(payload):
                    return payload
        return None

    def wait(self, terminal: str, kind: str, match: Callable[[dict[str, Any]], bool] = lambda _p: True, *,
             after: int = 0, timeout_s: float = WAIT_S, what: str = "") -> dict[str, Any]:
        return wait_for(lambda: self.find(terminal, kind, match, after=after),
                        what or f"{kind} from {terminal} at the help desk", timeout_s)

    def alert(self, terminal: str, alert_id: str, state: str, *, after: int = 0) -> dict[str, Any]:
        return self.wait(terminal, "alert", lambda p: p["id"] == alert_id and p["state"] == state, after=after,
                         what=f"alert {alert_id} {state} from {terminal} at the help desk")

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


# -- one terminal: its folder, its configuration, its processes --------------------------------------
@dataclass
class KioskSite:
    """One enrolled terminal: its id, data folder, configuration file and environment."""

    terminal_id: str
    data_dir: Path
    config: Path
    env: dict[str, str]

    def outbox(self, kind: str = "application", inside: list[str] | None = None) -> dict[str, int]:
        """Outbox rows of one kind by state, read straight from the terminal's database (states
        are not secret). `inside`: the nsenter prefix of the mount namespace holding the data."""
        rows = self._query("SELECT state, count(*) FROM outbox WHERE kind = ? GROUP BY state", [kind], inside)
        return {str(state): int(n) for state, n in rows}

    def outbox_rows(self, inside: list[str] | None = None) -> list[tuple[str, str, str | None]]:
        """(local receipt, state, platform receipt) of every queued application."""
        rows = self._query("SELECT local_receipt, state, remote_receipt FROM outbox WHERE kind = 'application' "
                           "ORDER BY id", [], inside)
        return [(str(a), str(b), c) for a, b, c in rows]

    def attempts(self, local_receipt: str) -> int:
        """How many delivery attempts of this entry have ended so far."""
        rows = self._query("SELECT attempts FROM outbox WHERE local_receipt = ?", [local_receipt], None)
        return int(rows[0][0]) if rows else 0

    def _query(self, sql: str, params: list[Any], inside: list[str] | None) -> list[list[Any]]:
        path = self.data_dir / "outbox" / "outbox.db"
        if not inside:
            if not path.exists():
                return []
            with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as db:
                return [list(r) for r in db.execute(sql, params).fetchall()]
        # SQLite resolves /proc/<pid>/root/... back to this namespace's path: ask from inside
        done = subprocess.run([*inside, sys.executable, "-c", _QUERY, str(path), sql, json.dumps(params)],
                              capture_output=True, text=True, timeout=WAIT_S, check=False)
        assert done.returncode == 0, done.stderr
        return list(json.loads(done.stdout))


_QUERY = """
import json, os, sqlite3, sys
path, sql, params = sys.argv[1], sys.argv[2], json.loads(sys.argv[3])
rows = []
if os.path.exists(path):
    with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as db:
        rows = [list(r) for r in db.execute(sql, params).fetchall()]
print(json.dumps(rows))
"""


def _under(root: Path | None, path: Path) -> Path:
    return path if root is None else root / path.relative_to("/")


def make_site(tmp: Path, terminal_id: str, *, platform_url: str, broker: Broker,
              printer_baudrate: int = 0, backlog_alert: int = 1) -> KioskSite:
    """A terminal on emulated devices (ID card, receipt printer; no face check, no voice) that
    talks to `platform_url` and to the help desk through `broker`. `printer_baudrate`: the
    emulated printer takes that long on the wire (0: instantly), so printing can be caught."""
    data_dir = tmp / "data"
    secret = tmp / "secret"
    secret.mkdir(parents=True, mode=0o700, exist_ok=True)
    password = secret / "fleet-password"
    password.write_text(broker.add_terminal(terminal_id).password + "\n", encoding="utf-8")
    password.chmod(0o600)
    # the emulator paces what it reads; the driver, told the same rate, waits for it to finish
    paced = [f"baudrate = {printer_baudrate}"] if printer_baudrate else []
    lines = [
        "[terminal]", f'id = "{terminal_id}"', f'location = "{LOCATION}"', f'data_dir = "{data_dir}"',
        "[voice]", "enabled = false",
        "[face]", "enabled = false",
        "[platform]", f'url = "{platform_url}"', "timeout_s = 2.0", "delivery_interval_s = 0.3",
        "[fleet]", "enabled = true", f'broker_host = "{broker.host}"', f"broker_port = {broker.port}",
        f'ca_file = "{broker.ca_file}"', f'password_file = "{password}"', "heartbeat_s = 1.0", "keepalive_s = 5",
        "platform_check_s = 1", "platform_unreachable_alert_s = 1", f"outbox_backlog_alert = {backlog_alert}",
        "[devices.idcard]", "emulate = true",
        "[devices.receipt_printer]", "emulate = true", *paced,
        "[devices.receipt_printer.emulator]", "render = false", *paced,
    ] + [line for name in ("smartcard", "camera", "qr_scanner", "scanner", "a4_printer")
         for line in (f"[devices.{name}]", "enabled = false")]
    config = tmp / "terminal.toml"
    config.write_text("\n".join(lines) + "\n", encoding="utf-8")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("KIOSK", "GOVPLATFORM_", "NOTIFY_SOCKET",
                                                                     "WATCHDOG_"))}
    env.update({"KIOSK_CONFIG": str(config), "PYTHONUNBUFFERED": "1"})
    return KioskSite(terminal_id, data_dir, config, env)


@dataclass
class KioskProcess:
    """A kiosk process and everything it printed (stdout and stderr, one list of lines)."""

    argv: list[str]
    env: dict[str, str]
    proc: subprocess.Popen[str] | None = None
    lines: list[str] = field(default_factory=list)
    _changed: threading.Condition = field(default_factory=threading.Condition)
    _reader: threading.Thread | None = None
    _step: int = 0

    def start(self) -> KioskProcess:
        self.lines.clear()
        self._step = 0
        self.proc = subprocess.Popen(self.argv, cwd=ROOT, env=self.env, text=True, stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, stderr=subprocess.STDOUT, bufsize=1)
        self._reader = threading.Thread(target=self._read, args=(self.proc,), daemon=True, name="kiosk-output")
        self._reader.start()
        return self

    def _read(self, proc: subprocess.Popen[str]) -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            with self._changed:
                self.lines.append(line.rstrip("\n"))
                self._changed.notify_all()
        with self._changed:
            self._changed.notify_all()

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def output(self) -> str:
        with self._changed:
            return "\n".join(self.lines)

    def wait_line(self, pattern: str, *, after: int = 0, timeout_s: float = WAIT_S) -> re.Match[str]:
        """The first line from index `after` on matching `pattern` (a regular expression)."""
        regex = re.compile(pattern)
        deadline = time.monotonic() + timeout_s
        with self._changed:
            while True:
                for line in self.lines[after:]:
                    found = regex.search(line)
                    if found:
                        return found
                left = deadline - time.monotonic()
                exited = self.proc is not None and self.proc.poll() is not None
                if left <= 0 or (exited and not (self._reader and self._reader.is_alive())):
                    raise AssertionError(f"the kiosk never printed /{pattern}/ "
                                         f"({'it exited' if exited else f'not within {timeout_s:.0f} s'}):\n"
                                         + "\n".join(self.lines[-60:]))
                self._changed.wait(min(left, 0.2))

    def mark(self) -> int:
        with self._changed:
            return len(self.lines)

    def send(self, step: dict[str, Any], *, check: bool = True) -> str:
        """Play one scenario step (process_driver.py); returns the driver's answer line."""
        assert self.proc is not None and self.proc.stdin is not None
        self._step += 1
        n = self._step
        self.proc.stdin.write(json.dumps(step, ensure_ascii=False) + "\n")
        self.proc.stdin.flush()
        answer = self.wait_line(rf"^driver: (done|failed|error) {n}\b", timeout_s=WAIT_S + 30).group(0)
        if check:
            assert answer.startswith("driver: done"), f"step {step}: {answer}\n{self.output()[-4000:]}"
        return answer

    def send_nowait(self, step: dict[str, Any]) -> int:
        """Hand over one step and return at once (the test kills the process meanwhile)."""
        assert self.proc is not None and self.proc.stdin is not None
        self._step += 1
        self.proc.stdin.write(json.dumps(step, ensure_ascii=False) + "\n")
        self.proc.stdin.flush()
        return self._step

    def kill(self) -> int:
        """SIGKILL: no clean-up of any kind runs, as in a power cut or the OOM killer."""
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        code = self.proc.wait(WAIT_S)
        self._finish()
        return code

    def stop(self, timeout_s: float = WAIT_S) -> int:
        """The polite stop: "stop" to the driver, SIGTERM to main.py (as systemd does)."""
        assert self.proc is not None
        if self.proc.poll() is None:
            if DRIVER.name in " ".join(self.argv):
                try:
                    assert self.proc.stdin is not None
                    self.proc.stdin.write("stop\n")
                    self.proc.stdin.flush()
                except (BrokenPipeError, OSError):
                    pass
            else:
                self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout_s)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(WAIT_S)
        self._finish()
        return self.proc.returncode

    def _finish(self) -> None:
        if self._reader is not None:
            self._reader.join(10)
        assert self.proc is not None
        for stream in (self.proc.stdin, self.proc.stdout):
            if stream is not None:
                try:
                    stream.close()
                except OSError:
                    pass

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None


def driver(site: KioskSite, prefix: list[str] | None = None) -> KioskProcess:
    """The terminal driven step by step (`prefix`: e.g. nsenter into another mount namespace)."""
    return KioskProcess([*(prefix or []), sys.executable, str(DRIVER)], site.env)


def headless(site: KioskSite, prefix: list[str] | None = None) -> KioskProcess:
    """The product's own entry point, as systemd starts it (without a screen)."""
    return KioskProcess([*(prefix or []), sys.executable, str(ROOT / "main.py"), "--headless", "--emulated"],
                        site.env)


# -- a visit, as scenario steps (tests/platform/scenarios/submit_to_platform.toml, no face check) ---
UP_TO_REVIEW: list[dict[str, Any]] = [
    {"do": "press", "button": "start"},
    {"do": "place_card", "card": "resident"},
    {"do": "expect", "step": "home", "within_s": 30},
    {"do": "press", "button": "browse"},
    {"do": "choose", "service": SERVICE},
    {"do": "expect", "step": "notice", "within_s": 30},
    {"do": "press", "button": "next"},
    {"do": "expect", "step": "form", "within_s": 30},
    {"do": "correct", "field": "record_type", "value": "contribution_proof"},
    {"do": "correct", "field": "period", "value": "12m"},
    {"do": "press", "button": "next"},
    {"do": "expect", "step": "materials", "materials": {"id_card": "e_licence"}, "within_s": 30},
    {"do": "press", "button": "next"},
    {"do": "expect", "step": "review", "within_s": 30},
]
# 预约: a service (not a certificate): its receipt comes out of the receipt printer. On a Monday
# one to two weeks ahead.
_TODAY = datetime.date.today()
_DAY = (_TODAY + datetime.timedelta(days=14 - _TODAY.weekday())).isoformat()
APPOINTMENT_UP_TO_REVIEW: list[dict[str, Any]] = [
    *UP_TO_REVIEW[:4],
    {"do": "choose", "service": "appointment"},
    *UP_TO_REVIEW[5:8],
    {"do": "fill", "values": {"business": "social_insurance", "date": _DAY, "contact_phone": "13800000011"}},
    {"do": "press", "button": "next"},
    {"do": "expect", "step": "review", "within_s": 30},
]
CONFIRM: dict[str, Any] = {"do": "press", "button": "confirm"}
QUEUED_RECEIPT = r"L[0-9]{8}-.+"
PLATFORM_RECEIPT = r"SQ[0-9]{14}"
AFTER_FINISH: list[dict[str, Any]] = [
    {"do": "remove_card"},
    {"do": "expect", "step": "rating", "within_s": 30},
    {"do": "press", "button": "finish"},  # no rating: the platform counts applications only
    {"do": "expect", "step": "attract", "within_s": 30},
]


def finish(receipt: str, notice: str | None = None) -> dict[str, Any]:
    step: dict[str, Any] = {"do": "expect", "step": "finish", "receipt": receipt, "within_s": 30}
    if notice:
        step["notice"] = notice
    return step


def receipt_shown(kiosk: KioskProcess, after: int = 0) -> str:
    """The receipt number the finish screen showed the citizen."""
    return kiosk.wait_line(r"screen finish \([a-z_]+.*receipt (\S+?)[,)]", after=after).group(1)


# -- a tiny disk for the terminal's data folder ------------------------------------------------------
@dataclass
class TinyDisk:
    """A small tmpfs over a terminal's data folder, mounted in a private mount namespace (as
    devices/smartcard/pcscd_rig.py makes its own): nobody else sees it and it needs no loop
    device. A holder process keeps the namespace; kiosk processes enter it with `prefix`
    (nsenter), the test reaches the files through `root` (/proc/<holder>/root). The holder
    ends when its stdin closes, so a test that dies leaves nothing mounted."""

    holder: subprocess.Popen[str]
    data_dir: Path

    @property
    def root(self) -> Path:
        return Path(f"/proc/{self.holder.pid}/root")

    @property
    def prefix(self) -> list[str]:
        user = [] if os.geteuid() == 0 else ["--user", "--preserve-credentials"]
        return ["nsenter", f"--target={self.holder.pid}", *user, "--mount", "--"]

    def path(self, inside: Path) -> Path:
        """A path under the data folder as this process reaches it."""
        return _under(self.root, inside)

    def fill(self) -> int:
        """Write a filler file until the disk refuses even one byte; returns the bytes written."""
        written = 0
        with open(self.path(self.data_dir / "filler"), "ab", buffering=0) as fh:
            for size in (1 << 20, 1 << 16, 1 << 12, 1):
                try:
                    while True:
                        written += fh.write(bytes(size))
                except OSError:  # ENOSPC: on with smaller pieces, down to the last byte
                    continue
        return written

    def free(self) -> None:
        self.path(self.data_dir / "filler").unlink()

    def free_bytes(self) -> int:
        stat = os.statvfs(self.path(self.data_dir))
        return stat.f_bavail * stat.f_frsize

    def close(self) -> None:
        if self.holder.stdin is not None:
            self.holder.stdin.close()
        try:
            self.holder.wait(WAIT_S)
        except subprocess.TimeoutExpired:
            self.holder.kill()
            self.holder.wait(WAIT_S)


# mount, copy the terminal's files in, say so, then hold the namespace until stdin closes
_HOLDER = ('mount -t tmpfs -o "size=$3,mode=0700" kiosk-data "$1" && cp -a "$2/." "$1/" && echo mounted '
           '&& read -r _')


def tiny_disk(data_dir: Path, seed: Path, size: str = "4m") -> TinyDisk:
    """Mount a `size` tmpfs on `data_dir` (in a new mount namespace) holding a copy of `seed`."""
    import shutil

    unshare = shutil.which("unshare")
    assert unshare and shutil.which("nsenter"), "unshare and nsenter are needed: apt-get install util-linux"
    data_dir.mkdir(parents=True, exist_ok=True)
    cmd = [unshare, *([] if os.geteuid() == 0 else ["--user", "--map-root-user"]), "--mount", "--propagation",
           "private", "sh", "-c", _HOLDER, "sh", str(data_dir), str(seed), size]
    holder = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    assert holder.stdout is not None
    first = holder.stdout.readline().strip()
    if first != "mounted":
        holder.kill()
        rest = holder.communicate(timeout=WAIT_S)[0]
        raise AssertionError(f"no private tmpfs for the data folder ({first} {rest}): the test needs "
                             "unshare --mount (root, or unprivileged user namespaces)")
    return TinyDisk(holder, data_dir)
