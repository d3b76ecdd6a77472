"""Installing on a terminal (deploy/): the systemd units, the notify protocol and the watchdog.

- the unit files pass `systemd-analyze verify` (on a copy whose paths point into this
  checkout, as the installer rewrites them for its --app-dir); the getty drop-in is verified
  on getty@tty1.service, with a broken copy to show the drop-in is really read;
- `main.py --headless`, and `main.py` on the screen, under a real datagram socket as
  $NOTIFY_SOCKET: READY=1 (on the screen: with the first attract frame), repeated WATCHDOG=1,
  STOPPING=1 after SIGTERM;
- the touchscreen app under Xvfb (tests/ui/drive_app.py): pings while it draws, none while
  its UI thread is blocked, while the visit's lock is held, or while no frame completes,
  although the process is alive all along; pings again afterwards;
- deploy/install.sh --dry-run lists every step and changes nothing.

Pings are counted, never timed: a freeze lasts until the test thaws it, and the test only
checks that no ping arrived in the meantime.
"""
from __future__ import annotations

import json
import os
import queue
import re
import select
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from kiosk import watchdog

ROOT = Path(__file__).resolve().parent.parent
DEPLOY = ROOT / "deploy"
UNITS = DEPLOY / "systemd"
sys.path.insert(0, str(ROOT / "tests" / "ui"))
from x11 import next_event, own_xvfb, stop_app  # tests/ui/x11.py
# scripts/test.sh runs this module alone (SOLO): it counts the UI's watchdog pings

DEVICES_OFF = {f"KIOSK__DEVICES__{name}__ENABLED": "false" for name in (
    "IDCARD", "SMARTCARD", "CAMERA", "RECEIPT_PRINTER", "A4_PRINTER", "SCANNER", "QR_SCANNER")}


# -- a real notification socket ----------------------------------------------------------------
class NotifySocket:
    """What systemd listens on: an AF_UNIX datagram socket, by path or abstract name ("@...")."""

    def __init__(self, address: str) -> None:
        self.address = address
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind("\0" + address[1:] if address.startswith("@") else address)
        self.messages: list[str] = []

    def receive(self, timeout: float) -> str | None:
        ready, _, _ = select.select([self.sock], [], [], timeout)
        if not ready:
            return None
        message = self.sock.recv(4096).decode()
        self.messages.append(message)
        return message

    def drain(self) -> list[str]:
        """Every datagram already queued (sent before now), without waiting."""
        got = []
        while (message := self.receive(0)) is not None:
            got.append(message)
        return got

    def wait_for(self, line: str, count: int = 1, timeout: float = 20.0,
                 alive: Callable[[], bool] = lambda: True) -> list[str]:
        """Datagrams until `count` of them held `line` (e.g. "WATCHDOG=1")."""
        got: list[str] = []
        deadline = time.monotonic() + timeout
        while sum(line in m.split("\n") for m in got) < count:
            left = deadline - time.monotonic()
            if left <= 0 or not alive():
                raise AssertionError(f"waited for {count} x {line!r}; got {got!r} (process alive: {alive()}); "
                                     f"all so far: {self.messages[-15:]!r}")
            message = self.receive(min(left, 0.5))
            if message is not None:
                got.append(message)
        return got

    def close(self) -> None:
        self.sock.close()
        if not self.address.startswith("@"):
            Path(self.address).unlink(missing_ok=True)


def count(messages: list[str], line: str) -> int:
    return sum(line in m.split("\n") for m in messages)


@pytest.fixture
def notify_socket(tmp_path: Path) -> Iterator[NotifySocket]:
    sock = NotifySocket(str(tmp_path / "notify.sock"))
    yield sock
    sock.close()


# -- kiosk/watchdog.py on its own ----------------------------------------------------------------
def test_notifier_speaks_the_protocol_to_a_path_and_an_abstract_socket(tmp_path: Path) -> None:
    for address in (str(tmp_path / "n.sock"), f"@kiosk-test-{uuid.uuid4().hex}"):
        sock = NotifySocket(address)
        try:
            env = {"NOTIFY_SOCKET": address, "WATCHDOG_USEC": "30000000", "WATCHDOG_PID": str(os.getpid()),
                   "OTHER": "kept"}
            notifier = watchdog.Notifier.from_env(env)
            assert env == {"OTHER": "kept"}, "the variables must not reach child processes"
            assert notifier.interval() == 30.0 and notifier.ping_period() == 15.0
            assert notifier.ready("attract, 0 devices online")
            assert notifier.ping() and notifier.status("identify,\n3 devices online")
            assert not notifier.status("identify, 3 devices online", only_if_changed=True)
            assert notifier.stopping()
            got = [sock.receive(2) for _ in range(4)]
            assert got == ["READY=1\nSTATUS=attract, 0 devices online", "WATCHDOG=1",
                           "STATUS=identify, 3 devices online", "STOPPING=1"]
            assert sock.drain() == []
            notifier.close()
        finally:
            sock.close()


def test_notifier_is_a_no_op_outside_systemd_and_for_another_process(notify_socket: NotifySocket) -> None:
    outside = watchdog.Notifier.from_env({})
    assert not outside.enabled and outside.interval() is None and outside.ping_period() is None
    assert not outside.ready() and not outside.ping() and not outside.stopping()
    # $WATCHDOG_PID names another process (we inherited the variables): no watchdog for us
    other = watchdog.Notifier(notify_socket.address, 2_000_000, watchdog_pid=os.getpid() + 1)
    assert other.interval() is None and not other.ping()
    assert other.ready()  # notifications other than the watchdog still go out
    assert notify_socket.drain() == ["READY=1"]
    # no watchdog configured: pings are not sent at all
    assert not watchdog.Notifier(notify_socket.address).ping()
    # a socket that went away: False, logged, never raised
    gone = watchdog.Notifier(str(notify_socket.address) + ".gone", 2_000_000)
    assert not gone.ping()


def test_frame_heartbeat_pings_only_after_a_frame(notify_socket: NotifySocket) -> None:
    beat = watchdog.FrameHeartbeat(watchdog.Notifier(notify_socket.address, 1_000_000),
                                   status=lambda: "attract, 7 devices online")
    assert not beat.beat()  # no frame drawn yet
    beat.frame()
    assert beat.beat()
    assert not beat.beat() and not beat.beat()  # the UI thread runs, but nothing is drawn
    beat.frame()
    beat.frame()
    assert beat.beat()
    assert notify_socket.drain() == ["STATUS=attract, 7 devices online", "WATCHDOG=1", "WATCHDOG=1"]
    assert beat.pings == 2


# -- the unit files --------------------------------------------------------------------------------
def systemd_analyze() -> str:
    tool = shutil.which("systemd-analyze")
    if tool is None:
        pytest.fail("systemd-analyze is not installed: install the Debian package systemd (scripts/setup.sh does)")
    return tool


def render(unit: Path, home: Path) -> str:
    """The unit as deploy/install.sh installs it for an app in this checkout: every path it
    names must exist for `verify` (it checks ExecStart= programs)."""
    text = unit.read_text().replace("/opt/kiosk", str(ROOT)).replace("/home/kiosk", str(home))
    if not (ROOT / ".venv" / "bin" / "python").exists():  # tests run by another interpreter
        text = text.replace(f"{ROOT}/.venv/bin/python", sys.executable)
    return text


def verify(tool: str, folder: Path, *units: str) -> subprocess.CompletedProcess[str]:
    # the folder first, then the system's own units (targets, getty@.service's dependencies)
    env = dict(os.environ, SYSTEMD_UNIT_PATH=f"{folder}:", SYSTEMD_LOG_COLOR="0")
    return subprocess.run([tool, "verify", "--man=no", *units], cwd=folder, env=env,
                          capture_output=True, text=True, timeout=60, check=False)


def problems(done: subprocess.CompletedProcess[str], *names: str) -> list[str]:
    """verify's complaints about our files (it exits 0 on unknown keys, so read what it says)."""
    lines = [line for line in (done.stdout + done.stderr).splitlines() if line.strip()]
    return [line for line in lines if any(name in line for name in names)] or (lines if done.returncode else [])


def test_help_desk_unit_passes_systemd_analyze_verify(tmp_path: Path) -> None:
    tool = systemd_analyze()
    (tmp_path / "helpdesk.service").write_text(render(UNITS / "helpdesk.service", tmp_path))
    done = verify(tool, tmp_path, "helpdesk.service")
    found = problems(done, "helpdesk.service", str(tmp_path))
    assert done.returncode == 0 and not found, "\n".join(found)
    unit = (UNITS / "helpdesk.service").read_text()
    assert "--host 127.0.0.1" in unit and "--https-only" in unit  # behind a TLS proxy, never open
    dropin = (UNITS / "mosquitto-fleet.conf").read_text()
    assert "ExecStart=\nExecStart=/usr/sbin/mosquitto -c /etc/kiosk-fleet/mosquitto.conf" in dropin


def test_units_pass_systemd_analyze_verify(tmp_path: Path) -> None:
    tool = systemd_analyze()
    for name in ("kiosk.service", "kiosk-retry.service"):
        (tmp_path / name).write_text(render(UNITS / name, tmp_path))
    done = verify(tool, tmp_path, "kiosk.service", "kiosk-retry.service")
    found = problems(done, "kiosk.service", "kiosk-retry.service", str(tmp_path))
    assert done.returncode == 0 and not found, (
        f"systemd-analyze verify (exit {done.returncode}) found problems in deploy/systemd/*.service "
        f"(verified as copies in {tmp_path} with /opt/kiosk -> {ROOT}):\n" + "\n".join(found))
    unit = (UNITS / "kiosk.service").read_text()
    for setting in ("Type=notify", "NotifyAccess=main", "WatchdogSec=30", "Restart=always",
                    "After=network-online.target", "Wants=network-online.target", "User=kiosk",
                    "Environment=KIOSK_CONFIG=/etc/kiosk/terminal.toml", "NoNewPrivileges=yes",
                    "ProtectSystem=full", "PrivateTmp=yes", "OnFailure=kiosk-retry.service"):
        assert re.search(rf"^{re.escape(setting)}\b", unit, re.MULTILINE), f"kiosk.service lacks {setting}"
    assert not re.search(r"^ProtectHome=", unit, re.MULTILINE)  # the X cookie and caches are in /home/kiosk


def test_restart_steps_drop_in_only_for_systemd_254_and_newer(tmp_path: Path) -> None:
    tool = systemd_analyze()
    (tmp_path / "kiosk.service").write_text(render(UNITS / "kiosk.service", tmp_path))
    (tmp_path / "kiosk-retry.service").write_text(render(UNITS / "kiosk-retry.service", tmp_path))
    (tmp_path / "kiosk.service.d").mkdir()
    shutil.copy(UNITS / "backoff-v254.conf", tmp_path / "kiosk.service.d" / "backoff.conf")
    version = int(subprocess.run([tool, "--version"], capture_output=True, text=True, check=True).stdout.split()[1])
    done = verify(tool, tmp_path, "kiosk.service")
    found = problems(done, "kiosk.service", "backoff.conf")
    if version >= 254:
        assert done.returncode == 0 and not found, "\n".join(found)
    else:  # what the installer's version check avoids: both keys unknown to this systemd
        assert len(found) == 2 and all("Unknown key" in line for line in found), "\n".join(found)
        assert {"RestartSteps", "RestartMaxDelaySec"} == {re.findall(r"'(\w+)'", line)[0] for line in found}


def test_getty_autologin_drop_in_passes_verify(tmp_path: Path) -> None:
    tool = systemd_analyze()
    template = next((p for p in (Path("/lib/systemd/system/getty@.service"), Path("/usr/lib/systemd/system/getty@.service"))
                     if p.exists()), None)
    if template is None:
        pytest.fail("getty@.service is not on this machine: install the Debian package systemd (scripts/setup.sh does)")
    shutil.copy(template, tmp_path / "getty@.service")
    drop_in = tmp_path / "getty@tty1.service.d" / "autologin.conf"
    drop_in.parent.mkdir()
    text = (UNITS / "getty-autologin.conf").read_text()
    assert re.search(r"^ExecStart=$", text, re.MULTILINE), "the drop-in must clear getty's ExecStart first"
    assert "--autologin kiosk" in text
    drop_in.write_text(text)
    done = verify(tool, tmp_path, "getty@tty1.service")
    found = problems(done, "getty@tty1", "autologin.conf")
    assert done.returncode == 0 and not found, "\n".join(found)
    # the drop-in is really read: the same one without the clearing line is refused
    drop_in.write_text(re.sub(r"^ExecStart=\n", "", text, flags=re.MULTILINE))
    broken = verify(tool, tmp_path, "getty@tty1.service")
    assert broken.returncode != 0 and "more than one ExecStart" in broken.stdout + broken.stderr


# -- main.py --headless under a notification socket ----------------------------------------------
def kiosk_env(tmp_path: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("KIOSK_", "KIVY_", "SDL_", "NOTIFY_", "WATCHDOG_")) and k != "DISPLAY"}
    env.update(DEVICES_OFF)
    env.update({"KIOSK__PLATFORM__URL": "", "KIOSK__VOICE__ENABLED": "false", "KIOSK__FACE__ENABLED": "false",
                "KIOSK__TERMINAL__DATA_DIR": str(tmp_path / "data"), "PYTHONUNBUFFERED": "1"})
    env.update(extra)
    return env


def test_headless_notifies_ready_pings_and_stopping(tmp_path: Path, notify_socket: NotifySocket) -> None:
    env = kiosk_env(tmp_path, NOTIFY_SOCKET=notify_socket.address, WATCHDOG_USEC="2000000")
    with open(tmp_path / "kiosk.log", "w") as log:
        proc = subprocess.Popen([sys.executable, str(ROOT / "main.py"), "--headless"], cwd=ROOT, env=env,
                                stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT)
    try:
        alive = lambda: proc.poll() is None
        try:
            first = notify_socket.wait_for("READY=1", timeout=60, alive=alive)
            pings = notify_socket.wait_for("WATCHDOG=1", count=2, timeout=20, alive=alive)
        except AssertionError as exc:
            raise AssertionError(f"{exc}\nkiosk's output:\n{(tmp_path / 'kiosk.log').read_text()[-3000:]}") from None
        assert count(first, "WATCHDOG=1") == 0, "READY=1 comes first"
        ready = first[-1].split("\n")
        assert "STATUS=attract, 0 devices online" in ready, ready
        assert count(pings, "READY=1") == 0
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 0
        rest = notify_socket.drain()
        assert count(rest, "STOPPING=1") == 1, rest
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


# -- the touchscreen app under Xvfb --------------------------------------------------------------
@pytest.fixture(scope="module")
def display(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """Our own Xvfb, as tests/ui/conftest.py starts it (the server picks a free display)."""
    if shutil.which("Xvfb") is None:
        pytest.fail("Xvfb is not installed: run scripts/setup.sh (Debian: apt-get install xvfb xauth)")
    with own_xvfb(tmp_path_factory.mktemp("xvfb") / "xvfb.log", (800, 600)) as screen:
        yield screen


class App:
    """tests/ui/drive_app.py in its own process: its JSON lines and its commands."""

    def __init__(self, env: dict[str, str], stderr_path: Path) -> None:
        self.stderr_path = stderr_path
        self._stderr = open(stderr_path, "w")  # noqa: SIM115  (closed in stop())
        self.proc = subprocess.Popen([sys.executable, str(ROOT / "tests" / "ui" / "drive_app.py")], cwd=ROOT,
                                     env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self._stderr,
                                     text=True, encoding="utf-8", bufsize=1)
        self.events: queue.Queue[dict[str, Any] | None] = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            if line.startswith("{"):
                try:
                    self.events.put(json.loads(line))
                except json.JSONDecodeError:
                    pass
        self.events.put(None)

    def alive(self) -> bool:
        return self.proc.poll() is None

    def send(self, **command: Any) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(json.dumps(command) + "\n")
        self.proc.stdin.flush()

    def wait_event(self, name: str, timeout: float = 30.0, **fields: Any) -> dict[str, Any]:
        event = next_event(self.events, lambda e: e.get("event") == name and all(e.get(k) == v for k, v in fields.items()),
                           timeout)
        if event is None:
            self._stderr.flush()
            raise AssertionError(f"no {name} event {fields or ''} (app alive: {self.alive()}); its stderr:\n"
                                 f"{self.stderr_path.read_text(errors='replace')[-3000:]}")
        return event

    def stop(self) -> None:
        stop_app(self.proc)
        self._stderr.close()


def test_ui_pings_only_while_frames_are_drawn(display: str, tmp_path: Path) -> None:
    sock = NotifySocket(f"@kiosk-test-{uuid.uuid4().hex}")  # abstract, as systemd's own may be
    period = 0.3  # WATCHDOG_USEC 0.6 s: a ping every 0.3 s
    (tmp_path / "kivy").mkdir()
    env = kiosk_env(tmp_path, DISPLAY=display, NOTIFY_SOCKET=sock.address, WATCHDOG_USEC=str(int(period * 2e6)),
                    KIVY_NO_ARGS="1", KIVY_HOME=str(tmp_path / "kivy"), KIVY_NO_FILELOG="1", KIVY_NO_CONSOLELOG="1",
                    SDL_AUDIODRIVER="dummy", SDL_VIDEO_X11_WMCLASS="Kiosk", KIOSK__UI__FULLSCREEN="false",
                    KIOSK__UI__WIDTH="800", KIOSK__UI__HEIGHT="600")
    app = App(env, tmp_path / "app.stderr")
    try:
        app.wait_event("ready", timeout=60)
        pings = sock.wait_for("WATCHDOG=1", count=2, timeout=20, alive=app.alive)
        statuses = [line for m in sock.messages for line in m.split("\n") if line.startswith("STATUS=")]
        assert statuses and statuses[0].startswith("STATUS=attract, "), sock.messages
        assert count(pings, "READY=1") == 0  # READY=1 is main.py's (drive_app.py runs the app itself)
        for how in ("sleep", "visit_lock", "frames"):
            app.send(do="freeze", how=how, seconds=60)
            app.wait_event("frozen", how=how)
            sock.drain()  # pings sent before the UI stopped: the "frozen" line was written after them
            # four ping periods, two watchdog timeouts: systemd would have restarted us
            time.sleep(4 * period)
            assert app.alive(), f"the app died during the {how} freeze"
            late = sock.drain()
            # a blocked UI thread sends nothing; with frames stalled, the frame drawn just before
            # the stall may still be answered by one ping, then nothing
            allowed = 1 if how == "frames" else 0
            assert count(late, "WATCHDOG=1") <= allowed, f"pinged during the {how} freeze: {late}"
            app.send(do="thaw")
            app.wait_event("thawed", how=how)
            sock.wait_for("WATCHDOG=1", count=1, timeout=20, alive=app.alive)
    finally:
        app.stop()
        sock.close()


def test_main_ui_notifies_ready_with_the_first_frame(display: str, tmp_path: Path) -> None:
    """main.py itself on the screen: READY=1 (with the status line) once the attract screen is
    drawn, then the UI thread's pings, STOPPING=1 after SIGTERM."""
    sock = NotifySocket(f"@kiosk-test-{uuid.uuid4().hex}")
    (tmp_path / "kivy").mkdir()
    env = kiosk_env(tmp_path, DISPLAY=display, NOTIFY_SOCKET=sock.address, WATCHDOG_USEC="600000",
                    KIVY_HOME=str(tmp_path / "kivy"), KIVY_NO_CONSOLELOG="1", SDL_AUDIODRIVER="dummy")
    with open(tmp_path / "kiosk.log", "w") as log:
        proc = subprocess.Popen([sys.executable, str(ROOT / "main.py"), "--window", "800x600"], cwd=ROOT, env=env,
                                stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT)
    try:
        alive = lambda: proc.poll() is None
        try:
            first = sock.wait_for("READY=1", timeout=60, alive=alive)
            sock.wait_for("WATCHDOG=1", count=2, timeout=20, alive=alive)
        except AssertionError as exc:
            raise AssertionError(f"{exc}\nkiosk's output:\n{(tmp_path / 'kiosk.log').read_text()[-3000:]}") from None
        assert first[-1].split("\n") == ["READY=1", "STATUS=attract, 0 devices online"]
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 0
        assert count(sock.drain(), "STOPPING=1") == 1
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        sock.close()


def test_wait_for_display(display: str) -> None:
    script = DEPLOY / "bin" / "wait-for-display"
    env = dict(os.environ, DISPLAY=display)
    done = subprocess.run([str(script), "5"], env=env, capture_output=True, text=True, timeout=30, check=False)
    if done.returncode == 2 and "neither xset" in done.stderr:
        pytest.fail("no X probe here: install x11-xserver-utils (xset; scripts/setup.sh does)")
    assert done.returncode == 0, done.stderr
    nothing = subprocess.run([str(script), "1"], env=dict(env, DISPLAY=":64999"), capture_output=True,
                             text=True, timeout=30, check=False)
    assert nothing.returncode == 1 and "no X server on :64999" in nothing.stderr, nothing.stderr


# -- the installer ------------------------------------------------------------------------------------
def test_install_dry_run_lists_every_step_and_changes_nothing(tmp_path: Path) -> None:
    app_dir = tmp_path / "opt" / "kiosk"
    watched = [app_dir, tmp_path / "opt", Path("/etc/systemd/system/kiosk.service"),
               Path("/etc/systemd/system/kiosk-retry.service"), Path("/etc/systemd/system/getty@tty1.service.d"),
               Path("/etc/kiosk"), Path("/var/lib/kiosk"), Path("/etc/X11/xorg.conf.d/10-kiosk.conf")]

    def state() -> list[Any]:
        users = subprocess.run(["getent", "passwd", "kiosk"], capture_output=True, text=True, check=False).stdout
        return [users] + [(str(p), p.exists() and p.stat().st_mtime_ns) for p in watched]

    before = state()
    done = subprocess.run(["bash", str(DEPLOY / "install.sh"), "--dry-run", "--app-dir", str(app_dir)],
                          capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stdout + done.stderr
    out = done.stdout
    assert state() == before, "install.sh --dry-run changed something"
    steps = re.findall(r"^\[install\] step (\d+): (.*)$", out, re.MULTILINE)
    assert [int(n) for n, _ in steps] == list(range(1, 9)), out
    for expected in ("useradd", "scripts/setup.sh", "/etc/systemd/system/kiosk.service",
                     "/etc/systemd/system/kiosk-retry.service", "getty@tty1.service.d/autologin.conf",
                     ".xinitrc", ".bash_profile", "systemctl daemon-reload", "systemctl enable kiosk.service",
                     "/etc/kiosk/terminal.toml", str(app_dir)):
        if expected == "useradd" and before[0]:
            continue  # a kiosk user exists here already
        assert expected in out, f"the dry run does not mention {expected!r}:\n{out}"
    actions = [line for line in out.splitlines() if line.startswith("[install]   + ")]
    assert actions == [], f"the dry run ran commands: {actions}"
    assert "dry run finished: nothing was changed" in out
