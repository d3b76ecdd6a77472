"""A virtual smart-card bench: the real pcscd with vsmartcard's vpcd, our cards behind it.

Why a separate, namespaced process: vpcd (normal mode) listens on 0.0.0.0:35963/35964, and
pcscd insists on /run/pcscd for its pid file and socket. Run inside
`unshare --net --mount` (plus `--user --map-root-user` when not root), vpcd's ports exist
only in a private network namespace whose loopback nobody else can reach, and a private
bind mount of /run/pcscd keeps a system pcscd untouched. The USB driver directory is hidden
too, so the bench's pcscd never claims a real reader. Clients outside reach the bench's
pcscd through its unix socket: set PCSCLITE_CSOCK_NAME to `PcscdRig.socket_path` before
the process first uses PC/SC (libpcsclite reads it once per process).

Two halves in this module:
- the rig process (`python -m devices.smartcard.pcscd_rig --workdir W --slots N`), run by
  `PcscdRig` inside the namespaces: brings lo up, mounts, writes reader.conf, runs pcscd
  (log in W/pcscd.log), one `VpcdLink` per slot, and a control socket W/control.sock
  speaking JSON lines ({"cmd": ...} -> {"ok": true, ...} | {"ok": false, "error": ...});
- `PcscdRig`, the client tests and the emulated terminal use: start it, insert and remove
  cards, stop/restart pcscd, unplug/plug the reader, stop it (only its own process group).
"""
from __future__ import annotations

import argparse
import ctypes
import fcntl
import importlib
import json
import logging
import os
import selectors
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Self

from devices.smartcard.vpcd_link import VPCD_PORT, VPCD_SLOTS, SlotOccupied, VpcdLink

log = logging.getLogger(__name__)

ROOT = Path(__file__).resolve().parents[2]  # the repository root, for card factories

READER_NAME = "Virtual PCD"
VPCD_DRIVER = Path("/usr/lib/pcsc/drivers/serial/libifdvpcd.so")
PCSC_USB_DROPDIR = Path("/usr/lib/pcsc/drivers")  # compiled into Debian's pcscd
PCSCD_RUNDIR = Path("/run/pcscd")  # compiled into pcscd: pid file and socket live here
PCSCD_CANDIDATES = ("/usr/sbin/pcscd", "/sbin/pcscd")

SOCKET_NAME = "pcscd.comm"
CONTROL_NAME = "control.sock"
ERROR_NAME = "rig-error.txt"
UNIX_PATH_MAX = 107  # sun_path is 108 bytes with the NUL


class RigError(RuntimeError):
    """The bench cannot do what was asked; the message says what to fix."""


def reader_names(slots: int = VPCD_SLOTS) -> list[str]:
    """pcscd's names for vpcd's slots ("Virtual PCD 00 00", ...): first reader, slot n."""
    return [f"{READER_NAME} 00 {slot:02d}" for slot in range(slots)]


def _tail(path: Path, lines: int = 15) -> str:
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return f"({path} not readable)"
    tail = text.strip().splitlines()[-lines:]
    return "\n".join(tail) if tail else f"({path} is empty)"


def _find_pcscd() -> str | None:
    found = shutil.which("pcscd")
    if found:
        return found
    return next((p for p in PCSCD_CANDIDATES if os.access(p, os.X_OK)), None)


# --------------------------------------------------------------------------------------
# The rig process (inside the namespaces)
# --------------------------------------------------------------------------------------

_MS_BIND = 4096
_SIOCGIFFLAGS = 0x8913
_SIOCSIFFLAGS = 0x8914
_IFF_UP = 0x1
_IFF_RUNNING = 0x40


class _SetupError(Exception):
    """The rig process cannot set itself up; the text goes to W/rig-error.txt."""


def _mount(source: str, target: str, fstype: str | None, flags: int) -> None:
    libc = ctypes.CDLL(None, use_errno=True)
    libc.mount.argtypes = [ctypes.c_char_p, ctypes.c_char_p, ctypes.c_char_p,
                           ctypes.c_ulong, ctypes.c_void_p]
    if libc.mount(source.encode(), target.encode(), fstype.encode() if fstype else None,
                  flags, None) != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"mount {source} on {target}: {os.strerror(err)}")


def _loopback_up() -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        req = struct.pack("16sH14s", b"lo", 0, b"")
        flags = struct.unpack("16sH", fcntl.ioctl(s, _SIOCGIFFLAGS, req)[:18])[1]
        fcntl.ioctl(s, _SIOCSIFFLAGS,
                    struct.pack("16sH14s", b"lo", flags | _IFF_UP | _IFF_RUNNING, b""))


def _ns_inode(kind: str, pid: str = "self") -> int:
    return os.stat(f"/proc/{pid}/ns/{kind}").st_ino


def _pdeathsig_prefix() -> list[str]:
    """`setpriv --pdeathsig TERM`: pcscd dies with the rig even if the rig is killed alone
    (PDEATHSIG follows the forking thread: pcscd is always forked by the main thread).
    setpriv instead of preexec_fn, which is unsafe once the links' threads run."""
    setpriv = shutil.which("setpriv")
    return [setpriv, "--pdeathsig", "TERM"] if setpriv else []


class _Pcscd:
    """pcscd as a child of the rig process, restarted at will."""

    def __init__(self, exe: str, workdir: Path, extra_args: list[str]) -> None:
        self.exe = exe
        self.workdir = workdir
        self.extra_args = extra_args
        self.log_path = workdir / "pcscd.log"
        self.socket = workdir / "run" / SOCKET_NAME
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.running and self.proc is not None else None

    def _answers(self) -> bool:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
            try:
                s.connect(str(self.socket))
                return True
            except OSError:
                return False

    def start(self, confdir: Path, timeout: float = 10.0) -> None:
        if self.running:
            return
        for stale in ("pcscd.pid", SOCKET_NAME):  # left by a killed pcscd
            (self.workdir / "run" / stale).unlink(missing_ok=True)
        with open(self.log_path, "ab") as logf:
            logf.write(f"--- pcscd -c {confdir} at {time.strftime('%H:%M:%S')}\n".encode())
            logf.flush()
            self.proc = subprocess.Popen(
                [*_pdeathsig_prefix(), self.exe, "-f", "-c", str(confdir), *self.extra_args],
                stdin=subprocess.DEVNULL, stdout=logf, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + timeout
        while not self._answers():
            code = self.proc.poll()
            if code is not None:
                self.proc = None
                raise _SetupError(f"pcscd did not start (exit code {code}); "
                                  f"last lines of {self.log_path}:\n{_tail(self.log_path)}")
            if time.monotonic() > deadline:
                self.stop()
                raise _SetupError(f"pcscd did not open {self.socket} within {timeout:.0f} s; "
                                  f"last lines of {self.log_path}:\n{_tail(self.log_path)}")
            time.sleep(0.01)
        log.info("pcscd %d serving %s with %s", self.proc.pid, self.socket, confdir)

    def stop(self, timeout: float = 5.0) -> None:
        proc, self.proc = self.proc, None
        if proc is None or proc.poll() is not None:
            return
        proc.terminate()
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            log.warning("pcscd %d ignored SIGTERM for %.0f s; killing it", proc.pid, timeout)
            proc.kill()
            proc.wait()
        log.info("pcscd %d stopped (exit code %s)", proc.pid, proc.returncode)


class _RigProcess:
    """What runs in the namespaces: pcscd, the slots' links, the control socket."""

    def __init__(self, args: argparse.Namespace) -> None:
        self.workdir = Path(args.workdir).resolve()
        self.slots = args.slots
        self.lifeline_fd: int | None = args.lifeline_fd
        self.host_netns: int | None = args.host_netns
        self.host_mntns: int | None = args.host_mntns
        self.driver = Path(args.driver)
        extra = ["-d", "-a"] if args.pcscd_debug else []
        self.pcscd = _Pcscd(args.pcscd, self.workdir, extra)
        self.conf = self.workdir / "reader.conf.d"
        self.conf_empty = self.workdir / "reader.conf.d-unplugged"
        self.plugged = True
        self.links = [VpcdLink(VPCD_PORT + slot) for slot in range(self.slots)]
        self.stopping = False
        self.control_path = self.workdir / CONTROL_NAME

    # --- set-up ---------------------------------------------------------------------

    def check_isolated(self) -> None:
        """Refuse to run in the host's namespaces: vpcd would listen on the host's interfaces
        and the bind mount would hide the system pcscd's /run/pcscd."""
        for kind, host in (("net", self.host_netns), ("mnt", self.host_mntns)):
            if host is None:
                try:
                    host = _ns_inode(kind, "1")
                except OSError as exc:
                    raise _SetupError(f"cannot tell whether this process has its own {kind} "
                                      f"namespace ({exc}); start it through PcscdRig") from exc
            if _ns_inode(kind) == host:
                raise _SetupError(f"refusing to run in the host's {kind} namespace: vpcd would "
                                  "be reachable from the host; start it through PcscdRig "
                                  "(unshare --net --mount)")

    def set_up(self) -> None:
        self.check_isolated()
        try:
            _loopback_up()
        except OSError as exc:
            raise _SetupError(f"cannot bring up loopback in the private network namespace: {exc}")
        run = self.workdir / "run"
        run.mkdir(exist_ok=True)
        lib = self.workdir / "lib"
        lib.mkdir(exist_ok=True)
        driver = lib / self.driver.name
        shutil.copy2(self.driver, driver)  # its directory is hidden below
        try:
            if not PCSCD_RUNDIR.is_dir():
                # No /run/pcscd to mount over (pcscd never ran here): a private, empty /run.
                _mount("tmpfs", "/run", "tmpfs", 0)
                PCSCD_RUNDIR.mkdir()
            _mount(str(run), str(PCSCD_RUNDIR), None, _MS_BIND)
            if PCSC_USB_DROPDIR.is_dir():
                empty = self.workdir / "no-usb-drivers"
                empty.mkdir(exist_ok=True)
                _mount(str(empty), str(PCSC_USB_DROPDIR), None, _MS_BIND)
        except OSError as exc:
            raise _SetupError(f"cannot set up the private mounts: {exc}") from exc
        self.conf.mkdir(exist_ok=True)
        self.conf_empty.mkdir(exist_ok=True)
        (self.conf / "vpcd").write_text(
            f'FRIENDLYNAME "{READER_NAME}"\n'
            f"DEVICENAME   /dev/null:0x{VPCD_PORT:04X}\n"
            f"LIBPATH      {driver}\n"
            f"CHANNELID    0x{VPCD_PORT:04X}\n")

    # --- commands -------------------------------------------------------------------

    def status(self) -> dict[str, Any]:
        names = reader_names(self.slots)
        return {
            "rig_pid": os.getpid(),
            "pcscd_running": self.pcscd.running,
            "pcscd_pid": self.pcscd.pid,
            "socket": str(self.pcscd.socket),
            "plugged": self.plugged,
            "reader_present": self.plugged and self.pcscd.running,
            "slots": [{"slot": i, "reader": names[i], "inserted": link.inserted,
                       "connected": link.connected, "pulled_count": link.pulled_count,
                       "atr": bytes(link.engine.atr).hex() if link.engine is not None else None}
                      for i, link in enumerate(self.links)],
        }

    def _slot(self, req: dict[str, Any]) -> VpcdLink:
        slot = req.get("slot")
        if not isinstance(slot, int) or not 0 <= slot < self.slots:
            raise ValueError(f"slot must be an integer from 0 to {self.slots - 1}, got {slot!r}")
        return self.links[slot]

    @staticmethod
    def _build_engine(factory: Any, args: Any) -> Any:
        if not isinstance(factory, str) or ":" not in factory:
            raise ValueError(f'factory must be "module:callable", got {factory!r}')
        if not isinstance(args, dict):
            raise TypeError(f"args must be an object, got {args!r}")
        module_name, _, attr_path = factory.partition(":")
        try:
            target: Any = importlib.import_module(module_name)
        except ImportError as exc:
            raise ValueError(f"cannot import card factory module {module_name!r}: {exc}") from exc
        for attr in attr_path.split("."):
            try:
                target = getattr(target, attr)
            except AttributeError as exc:
                raise ValueError(f"{module_name} has no {attr_path!r}") from exc
        try:
            return target(**args)
        except TypeError as exc:
            raise ValueError(f"{factory}(**{args!r}) failed: {exc}") from exc

    def _restart(self, plugged: bool) -> dict[str, Any]:
        started = time.monotonic()
        self.plugged = plugged
        self.pcscd.stop()
        self.pcscd.start(self.conf if plugged else self.conf_empty)
        return {"elapsed_s": round(time.monotonic() - started, 4)}

    def handle(self, req: dict[str, Any]) -> dict[str, Any]:
        cmd = req.get("cmd")
        if cmd == "status":
            return self.status()
        if cmd == "insert":
            link = self._slot(req)
            engine = self._build_engine(req.get("factory"), req.get("args", {}))
            link.insert(engine)
            return {"atr": bytes(engine.atr).hex()}
        if cmd == "remove":
            return {"removed": self._slot(req).remove()}
        if cmd == "pcscd_stop":
            self.pcscd.stop()
            return {}
        if cmd == "pcscd_start":
            started = time.monotonic()
            self.pcscd.start(self.conf if self.plugged else self.conf_empty)
            return {"elapsed_s": round(time.monotonic() - started, 4)}
        if cmd == "pcscd_restart":
            return self._restart(self.plugged)
        if cmd == "unplug":
            return self._restart(False)
        if cmd == "plug":
            return self._restart(True)
        if cmd == "quit":
            self.stopping = True
            return {}
        raise ValueError(f"unknown command {cmd!r}")

    def _reply(self, line: bytes) -> bytes:
        try:
            req = json.loads(line)
            if not isinstance(req, dict):
                raise TypeError("a request is a JSON object")
            reply = {"ok": True, **self.handle(req)}
        except (ValueError, TypeError, SlotOccupied, _SetupError) as exc:
            reply = {"ok": False, "error": str(exc)}
        except Exception as exc:  # the rig keeps serving; the client gets why
            log.exception("command failed: %r", line)
            reply = {"ok": False, "error": f"{type(exc).__name__}: {exc}"}
        return json.dumps(reply).encode() + b"\n"

    # --- serving --------------------------------------------------------------------

    def serve(self) -> None:
        """The control socket, in the main thread (pcscd is forked from here, and its
        PDEATHSIG follows the thread that forked it)."""
        sel = selectors.DefaultSelector()
        wake_r, wake_w = os.pipe()
        os.set_blocking(wake_r, False)
        os.set_blocking(wake_w, False)
        signal.set_wakeup_fd(wake_w)

        def _on_signal(signum: int, _frame: Any) -> None:
            log.info("signal %d: stopping", signum)
            self.stopping = True

        for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
            signal.signal(signum, _on_signal)
        server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.control_path.unlink(missing_ok=True)
        server.bind(str(self.control_path))
        server.listen(8)
        server.setblocking(False)
        sel.register(server, selectors.EVENT_READ, "accept")
        sel.register(wake_r, selectors.EVENT_READ, "wake")
        if self.lifeline_fd is not None:
            sel.register(self.lifeline_fd, selectors.EVENT_READ, "lifeline")
        buffers: dict[socket.socket, bytes] = {}
        pcscd_was_running = True
        log.info("rig %d ready: %d slot(s), control %s", os.getpid(), self.slots, self.control_path)
        try:
            while not self.stopping:
                for key, _ in sel.select(0.5):
                    if key.data == "accept":
                        try:
                            conn, _ = server.accept()
                        except BlockingIOError:
                            continue
                        conn.setblocking(False)
                        buffers[conn] = b""
                        sel.register(conn, selectors.EVENT_READ, "conn")
                    elif key.data == "wake":
                        try:
                            os.read(wake_r, 64)
                        except BlockingIOError:
                            pass
                    elif key.data == "lifeline":
                        if not os.read(key.fd, 64):
                            log.info("the client process is gone: stopping")
                            self.stopping = True
                            sel.unregister(key.fd)
                    else:
                        self._on_conn(sel, key.fileobj, buffers)  # type: ignore[arg-type]
                running = self.pcscd.running
                if pcscd_was_running and not running and self.pcscd.proc is not None:
                    log.warning("pcscd exited by itself (exit code %s)", self.pcscd.proc.returncode)
                pcscd_was_running = running
        finally:
            for conn in list(buffers):
                conn.close()
            server.close()
            self.control_path.unlink(missing_ok=True)
            signal.set_wakeup_fd(-1)

    def _on_conn(self, sel: selectors.BaseSelector, conn: socket.socket,
                 buffers: dict[socket.socket, bytes]) -> None:
        try:
            data = conn.recv(65536)
        except BlockingIOError:
            return
        except OSError:
            data = b""
        if not data:
            sel.unregister(conn)
            buffers.pop(conn, None)
            conn.close()
            return
        buffers[conn] += data
        while b"\n" in buffers[conn]:
            line, buffers[conn] = buffers[conn].split(b"\n", 1)
            reply = self._reply(line)
            conn.setblocking(True)
            conn.settimeout(5.0)
            try:
                conn.sendall(reply)
            except OSError:
                pass
            conn.setblocking(False)

    def shut_down(self) -> None:
        for link in self.links:
            link.remove(wait_s=0.5)
        self.pcscd.stop()


def main(argv: list[str] | None = None) -> int:
    """The rig process; PcscdRig starts it inside `unshare --net --mount`."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workdir", required=True)
    parser.add_argument("--slots", type=int, default=VPCD_SLOTS, choices=range(1, VPCD_SLOTS + 1))
    parser.add_argument("--lifeline-fd", type=int, default=None,
                        help="stop when this pipe reaches EOF (the client process died)")
    parser.add_argument("--host-netns", type=int, default=None)
    parser.add_argument("--host-mntns", type=int, default=None)
    parser.add_argument("--pcscd", default=_find_pcscd() or "pcscd")
    parser.add_argument("--driver", default=str(VPCD_DRIVER))
    parser.add_argument("--pcscd-debug", action="store_true", help="pcscd -d -a")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, stream=sys.stderr,
                        format="%(asctime)s %(name)s %(levelname)s %(message)s")
    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))
    rig = _RigProcess(args)
    try:
        rig.set_up()
        rig.pcscd.start(rig.conf)
    except _SetupError as exc:
        log.error("%s", exc)
        (rig.workdir / ERROR_NAME).write_text(str(exc))
        rig.pcscd.stop()
        return 3
    try:
        rig.serve()
    finally:
        rig.shut_down()
    log.info("rig %d stopped", os.getpid())
    return 0


# --------------------------------------------------------------------------------------
# The client
# --------------------------------------------------------------------------------------

def _unshare_advice(log_text: str, as_root: bool) -> str | None:
    if "unshare failed" not in log_text and "uid_map" not in log_text:
        return None
    if as_root:
        return ("unshare --net --mount is not permitted: this process lacks CAP_SYS_ADMIN "
                "(in a container, run it with --cap-add SYS_ADMIN, or --privileged, and a "
                "seccomp profile that allows unshare)")
    return ("unshare --user --net --mount is not permitted for this user: enable unprivileged "
            "user namespaces (sysctl kernel.unprivileged_userns_clone=1 on Debian kernels that "
            "have it, user.max_user_namespaces > 0, and on Ubuntu "
            "kernel.apparmor_restrict_unprivileged_userns=0), or run the bench as root")


class PcscdRig:
    """The bench, seen from tests and the emulated terminal.

    ```
    with PcscdRig() as rig:
        os.environ["PCSCLITE_CSOCK_NAME"] = rig.start()   # before the first PC/SC call
        rig.insert(0, "devices.smartcard.card_emulator:SocialSecurityCard", holder="...")
    ```
    """

    def __init__(self, workdir: str | Path | None = None, slots: int = VPCD_SLOTS, *,
                 start_timeout: float = 15.0, pcscd_debug: bool = False) -> None:
        if not 1 <= slots <= VPCD_SLOTS:
            raise ValueError(f"vpcd offers 1 to {VPCD_SLOTS} slots, not {slots}")
        self.slots = slots
        self.start_timeout = start_timeout
        self.pcscd_debug = pcscd_debug
        self._own_workdir = workdir is None
        self._workdir: Path | None = Path(workdir).resolve() if workdir is not None else None
        self._proc: subprocess.Popen[bytes] | None = None
        self._lifeline_w: int | None = None

    # --- paths ----------------------------------------------------------------------

    @property
    def workdir(self) -> Path:
        if self._workdir is None:
            raise RigError("the rig has no work directory yet: call start()")
        return self._workdir

    @property
    def socket_path(self) -> str:
        """pcscd's socket: the value for PCSCLITE_CSOCK_NAME."""
        return str(self.workdir / "run" / SOCKET_NAME)

    @property
    def control_path(self) -> Path:
        return self.workdir / CONTROL_NAME

    @property
    def pcscd_log(self) -> Path:
        return self.workdir / "pcscd.log"

    @property
    def rig_log(self) -> Path:
        return self.workdir / "rig.log"

    @property
    def pid(self) -> int | None:
        """The process (and process group) this client started: unshare."""
        return self._proc.pid if self._proc is not None else None

    def reader_names(self) -> list[str]:
        return reader_names(self.slots)

    # --- lifecycle ------------------------------------------------------------------

    @staticmethod
    def _preflight() -> tuple[str, str]:
        unshare = shutil.which("unshare")
        if unshare is None:
            raise RigError("unshare not found: install the Debian package util-linux")
        pcscd = _find_pcscd()
        if pcscd is None:
            raise RigError("pcscd not found: install the Debian package pcscd")
        if not VPCD_DRIVER.is_file():
            raise RigError(f"{VPCD_DRIVER} not found: install the Debian package vsmartcard-vpcd")
        return unshare, pcscd

    def start(self) -> str:
        """Launch the namespaced rig (own process group), wait for pcscd and the control
        socket; returns the pcscd socket path for PCSCLITE_CSOCK_NAME."""
        if self._proc is not None and self._proc.poll() is None:
            return self.socket_path
        unshare, pcscd = self._preflight()
        if self._workdir is None:
            self._workdir = Path(tempfile.mkdtemp(prefix="pcscd-rig-"))
        self._workdir.mkdir(parents=True, exist_ok=True)
        for path in (self.socket_path, str(self.control_path)):
            if len(os.fsencode(path)) > UNIX_PATH_MAX:
                raise RigError(f"{path} is too long for a unix socket: use a shorter workdir")
        (self._workdir / ERROR_NAME).unlink(missing_ok=True)
        as_root = os.geteuid() == 0
        cmd = [unshare]
        if not as_root:
            cmd += ["--user", "--map-root-user"]
        lifeline_r, lifeline_w = os.pipe()
        cmd += ["--net", "--mount", "--propagation", "private", "--fork", "--kill-child=SIGTERM",
                sys.executable, "-m", "devices.smartcard.pcscd_rig",
                "--workdir", str(self._workdir), "--slots", str(self.slots),
                "--lifeline-fd", str(lifeline_r),
                "--host-netns", str(_ns_inode("net")), "--host-mntns", str(_ns_inode("mnt")),
                "--pcscd", pcscd]
        if self.pcscd_debug:
            cmd.append("--pcscd-debug")
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
        env.pop("PCSCLITE_CSOCK_NAME", None)
        with open(self.rig_log, "ab") as logf:
            try:
                self._proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdin=subprocess.DEVNULL,
                                              stdout=logf, stderr=subprocess.STDOUT,
                                              pass_fds=(lifeline_r,), start_new_session=True)
            finally:
                os.close(lifeline_r)
        self._lifeline_w = lifeline_w
        log.info("rig started: pid %d, workdir %s", self._proc.pid, self._workdir)
        try:
            self._wait_ready(as_root)
        except BaseException:
            self.stop()
            raise
        return self.socket_path

    def _wait_ready(self, as_root: bool) -> None:
        assert self._proc is not None
        deadline = time.monotonic() + self.start_timeout
        while True:
            code = self._proc.poll()
            if code is not None:
                raise self._start_failure(code, as_root)
            if self.control_path.exists():
                try:
                    if self._request({"cmd": "status"}, timeout=2.0).get("pcscd_running"):
                        return
                except (OSError, RigError):
                    pass
            if time.monotonic() > deadline:
                raise RigError(f"the rig did not become ready within {self.start_timeout:.0f} s; "
                               f"last lines of {self.rig_log}:\n{_tail(self.rig_log)}\n"
                               f"last lines of {self.pcscd_log}:\n{_tail(self.pcscd_log)}")
            time.sleep(0.02)

    def _start_failure(self, code: int, as_root: bool) -> RigError:
        error_file = self.workdir / ERROR_NAME
        if error_file.exists():
            return RigError(error_file.read_text())
        log_text = _tail(self.rig_log, 30)
        advice = _unshare_advice(log_text, as_root)
        if advice:
            return RigError(f"{advice}\n{log_text}")
        return RigError(f"the rig exited with code {code} before it was ready; "
                        f"last lines of {self.rig_log}:\n{log_text}")

    def stop(self) -> None:
        """Quit the rig, then SIGTERM/SIGKILL what is left of its process group; removes the
        work directory if the rig made it. Idempotent."""
        proc, self._proc = self._proc, None
        if proc is not None:
            if proc.poll() is None:
                try:
                    self._request({"cmd": "quit"}, timeout=3.0, proc=proc)
                except (OSError, RigError) as exc:
                    log.info("rig did not take quit (%s); terminating it", exc)
            self._close_lifeline()
            self._reap(proc)
        self._close_lifeline()
        if self._own_workdir and self._workdir is not None:
            shutil.rmtree(self._workdir, ignore_errors=True)
            self._workdir = None

    def _close_lifeline(self) -> None:
        if self._lifeline_w is not None:
            os.close(self._lifeline_w)
            self._lifeline_w = None

    @staticmethod
    def _reap(proc: subprocess.Popen[bytes]) -> None:
        """Wait for our group to go; the group id (= proc.pid, start_new_session) stays
        ours while any member lives, so signalling it never reaches anyone else."""
        pgid = proc.pid
        for sig, grace in ((None, 5.0), (signal.SIGTERM, 3.0), (signal.SIGKILL, 3.0)):
            if sig is not None:
                try:
                    os.killpg(pgid, sig)
                except ProcessLookupError:
                    pass
            deadline = time.monotonic() + grace
            while time.monotonic() < deadline:
                if proc.poll() is not None and not _group_alive(pgid):
                    return
                time.sleep(0.01)
        proc.poll()
        log.error("rig process group %d still has members after SIGKILL", pgid)

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # --- commands -------------------------------------------------------------------

    def _request(self, req: dict[str, Any], timeout: float = 30.0,
                 proc: subprocess.Popen[bytes] | None = None) -> dict[str, Any]:
        proc = proc or self._proc
        if proc is None or proc.poll() is not None:
            raise RigError("the rig is not running: call start()")
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
            s.settimeout(timeout)
            s.connect(str(self.control_path))
            s.sendall(json.dumps(req).encode() + b"\n")
            data = b""
            while not data.endswith(b"\n"):
                chunk = s.recv(65536)
                if not chunk:
                    raise RigError(f"the rig closed the control connection during {req['cmd']!r}")
                data += chunk
        reply = json.loads(data)
        if not reply.get("ok"):
            raise RigError(f"{req['cmd']}: {reply.get('error')}")
        return reply

    def status(self) -> dict[str, Any]:
        """{"rig_pid", "pcscd_running", "pcscd_pid", "plugged", "reader_present",
        "slots": [{"slot", "reader", "inserted", "connected", "pulled_count", "atr"}]}"""
        return self._request({"cmd": "status"})

    def insert(self, slot: int, factory: str, **args: Any) -> dict[str, Any]:
        """Insert the card `factory(**args)` ("module:callable") into `slot`."""
        return self._request({"cmd": "insert", "slot": slot, "factory": factory, "args": args})

    def remove(self, slot: int) -> dict[str, Any]:
        return self._request({"cmd": "remove", "slot": slot})

    def stop_pcscd(self) -> dict[str, Any]:
        return self._request({"cmd": "pcscd_stop"})

    def start_pcscd(self) -> dict[str, Any]:
        return self._request({"cmd": "pcscd_start"})

    def restart_pcscd(self) -> dict[str, Any]:
        return self._request({"cmd": "pcscd_restart"})

    def unplug(self) -> dict[str, Any]:
        """The reader unit is gone: pcscd restarted with no readers configured."""
        return self._request({"cmd": "unplug"})

    def plug(self) -> dict[str, Any]:
        """The reader is back: pcscd restarted with vpcd; inserted cards reconnect."""
        return self._request({"cmd": "plug"})


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


if __name__ == "__main__":
    sys.exit(main())
