"""An A4 printer emulator: a private cupsd with a cups-pdf queue, so the real CUPS driver runs in tests.

`CupsPdfEmulator.start()` starts its own cupsd (`cupsd -f -c <conf> -s <cups-files.conf>`)
with every directory it uses (ServerRoot, state, cache, spool, logs, PDFs) inside the
emulator's directory, listening on 127.0.0.1:<free port> only, and creates the queue
(`lpadmin -h 127.0.0.1:PORT -p KioskPDF -E -v cups-pdf:/ -P <the cups-pdf PPD>`). The
driver (CupsPrinter) is pointed at the returned "127.0.0.1:PORT" through its `server`
parameter (ADDRESS_PARAM) and speaks real IPP to it; every job goes through CUPS' real
filters and the cups-pdf backend into a PDF in `output_dir`. Nothing is shared with a
system cupsd, and `stop()` ends only the cupsd this object started.

Findings this design rests on (Debian 12, CUPS 2.4, cups-pdf 3.0.1):

- cups-pdf must run as root ("CUPS-PDF cannot be called without root privileges"); its
  backend file is mode 0700, which makes cupsd run it as root, so cupsd is started as
  root. cupsd then runs filters as `User lp` / `Group lp` (written out explicitly in
  cups-files.conf), which must be able to traverse into the spool: the emulator's
  directory is made 0711 and every parent must let others traverse (checked).
- cups-pdf reads its configuration from a path compiled in: /etc/cups/cups-pdf.conf, or
  /etc/cups/cups-pdf-<suffix>.conf for a device URI cups-pdf:/<suffix>. Nothing in the
  environment moves it. So the `Out` directory is pointed at `output_dir` one of two ways
  (`isolation`):
  * "namespace" (preferred; "auto" picks it when the kernel allows): cupsd is started
    in a private mount namespace (`unshare --mount --propagation private`) in which the
    emulator's own ServerRoot is bind-mounted over /etc/cups, so cups-pdf reads the
    emulator's cups-pdf.conf and nothing under /etc is touched;
  * "etc" (fallback, e.g. in a container without CAP_SYS_ADMIN): a per-queue file
    /etc/cups/cups-pdf-kiosk-emulator-<id>.conf is written, used through the backend's
    device URI, and removed by stop() (stale ones of dead emulators are removed at start).
- The queue's pdftops renderer is set to pdftocairo: with the default (Ghostscript) the
  PDF that cups-pdf writes has its Chinese text unextractable (the glyphs render, but
  pdftotext returns symbols); with pdftocairo the text survives, so tests can read it.
- The backend is a small wrapper around the real cups-pdf (in the emulator's own
  ServerBin; filters, drivers etc. are the system's, through symlinks). It reports the
  scripted faults the way printer backends do, with "STATE: +media-empty-error" lines
  that CUPS turns into printer-state-reasons: out of paper and jam hold the job in
  "printing" until cleared, paper low is reported, `fail_next_job` makes the backend
  fail so the queue's error policy (abort-job) aborts the job with the message.

Scripting: stop_queue(reason) (cupsdisable -r), resume() (cupsenable + cupsaccept),
reject(reason) (cupsreject), accept(), paper_out(), paper_low(), jam(), refill(),
fail_next_job(message), unplug() (cupsd stops; queue and pending jobs are kept on disk)
and replug() (cupsd starts again on the same address). `printed()` lists the PDFs out.
A console hands typed lines to `command()` (`help` lists the commands).

Standalone::

    python -m devices.a4_printer.emulator --dir /tmp/a4      # prints server 127.0.0.1:PORT
"""
from __future__ import annotations

import argparse
import logging
import os
import re
import secrets
import shlex
import shutil
import signal
import socket
import stat
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import ClassVar, Literal, Self
from devices.emulator_cli import run_standalone

log = logging.getLogger(__name__)

LOOPBACK = "127.0.0.1"  # the private cupsd never listens beyond this machine
CUPSD = "/usr/sbin/cupsd"
SYSTEM_SERVERBIN = Path("/usr/lib/cups")
CUPS_PDF_BACKEND = SYSTEM_SERVERBIN / "backend" / "cups-pdf"
CUPS_PDF_PPDS = (Path("/usr/share/ppd/cups-pdf/CUPS-PDF_opt.ppd"),
                 Path("/usr/share/cups/model/CUPS-PDF_opt.ppd"))
SYSTEM_CUPS_ETC = Path("/etc/cups")
ETC_CONF_PREFIX = "kiosk-emulator-"
READY_TIMEOUT_S = 10.0
_JOB_FILE = re.compile(r"job_(\d+)")

Isolation = Literal["auto", "namespace", "etc"]

CONSOLE_HELP = """emulated A4 printer (private cupsd + cups-pdf): type a command and Enter
  status                the queue as CUPS reports it (lpstat)
  stop [REASON]         stop the queue (cupsdisable -r REASON), as on a printer fault
  resume                enable the queue and let it accept jobs again
  reject [REASON]       the queue refuses new jobs (cupsreject)
  accept                the queue takes jobs again (cupsaccept)
  paper out|low|ok      the tray runs empty / runs low / is refilled (seen when a job prints)
  jam | unjam           a sheet jams in the printer / the jam is cleared
  fail [MESSAGE]        the next job fails in the printer
  printed               the PDFs printed so far
  unplug | replug       cupsd stops / starts again on the same address
  help                  this text"""

_BACKEND = r"""#!/bin/sh
# Written by the kiosk's CupsPdfEmulator (devices/a4_printer/emulator.py): the real cups-pdf
# backend behind scriptable faults (flag files in FAULTS), reported as printer backends do.
FAULTS=@FAULTS@
REAL=@REAL@
@URI@
[ $# -eq 0 ] && exec "$REAL"
hold() {  # while flag file $1 exists: printer-state-reason $2, the job waits "printing"
  if [ -e "$FAULTS/$1" ]; then
    echo "STATE: +$2" >&2
    while [ -e "$FAULTS/$1" ]; do
      kill -0 "$PPID" 2>/dev/null || exit 1
      sleep 0.1
    done
  fi
  # the printer reports its state with every job, as a real one does: a reason left by a job that
  # was cancelled while it waited (the tray refilled since) is cleared by the next page
  echo "STATE: -$2" >&2
}
hold paper-out media-empty-error
hold jam media-jam-error
if [ -e "$FAULTS/paper-low" ]; then echo "STATE: +media-low-report" >&2; else echo "STATE: -media-low-report" >&2; fi
if [ -e "$FAULTS/fail-next" ]; then
  msg=$(cat "$FAULTS/fail-next")
  rm -f "$FAULTS/fail-next"
  echo "ERROR: $msg" >&2
  sleep 0.3  # let cupsd read the message before it sees the exit, as a real backend's slower end does
  exit 1
fi
exec "$REAL" "$@"
"""


class EmulatorError(RuntimeError):
    """The emulator cannot run here, or a CUPS command it ran failed; says what to install or check."""


_namespace_ok: bool | None = None
_namespace_lock = threading.Lock()


def namespaces_available(probe_dir: Path) -> bool:
    """Whether cupsd can get a private mount namespace with /etc/cups replaced (asked once)."""
    global _namespace_ok
    with _namespace_lock:
        if _namespace_ok is None:
            unshare = shutil.which("unshare")
            if unshare is None or not SYSTEM_CUPS_ETC.is_dir():
                _namespace_ok = False
            else:
                probe = subprocess.run(
                    [unshare, "--mount", "--propagation", "private", "--", "/bin/sh", "-c",
                     'mount --bind "$1" /etc/cups', "sh", str(probe_dir)],
                    capture_output=True, timeout=10, check=False)
                _namespace_ok = probe.returncode == 0
                if not _namespace_ok:
                    log.info("A4 emulator: no private mount namespace here (%s); cups-pdf's config goes "
                             "into /etc/cups", probe.stderr.decode(errors="replace").strip())
        return _namespace_ok


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((LOOPBACK, 0))
        return sock.getsockname()[1]


def _first_dir_lp_cannot_enter(path: Path) -> Path | None:
    """The first directory on the way to `path` that user lp could not enter, or None."""
    import grp
    import pwd

    try:
        lp_uid, lp_gid = pwd.getpwnam("lp").pw_uid, grp.getgrnam("lp").gr_gid
    except KeyError:
        return None  # reported by the caller: there is no lp user at all
    for directory in [*reversed(path.parents), path]:
        info = directory.stat()
        mode = info.st_mode
        if info.st_uid == lp_uid:
            ok = mode & stat.S_IXUSR
        elif info.st_gid == lp_gid:
            ok = mode & stat.S_IXGRP
        else:
            ok = mode & stat.S_IXOTH
        if not ok:
            return directory
    return None


class CupsPdfEmulator:
    """A private cupsd on 127.0.0.1 with one cups-pdf queue; PDFs land in `output_dir`."""

    ADDRESS_PARAM = "server"  # the CupsPrinter parameter that start()'s address goes into
    DRIVER_DEFAULTS: ClassVar[dict[str, str]] = {"queue": "KioskPDF"}

    def __init__(self, directory: str | None = None, port: int = 0, queue: str = "KioskPDF",
                 isolation: Isolation = "auto") -> None:
        if not 0 <= port <= 65535:
            raise ValueError(f"port {port} outside 0..65535 (0 = any free port)")
        if not re.fullmatch(r"[A-Za-z0-9_-]{1,127}", queue):
            raise ValueError(f"queue name {queue!r}: letters, digits, _ and - only")
        if isolation not in ("auto", "namespace", "etc"):
            raise ValueError(f"isolation {isolation!r}: auto, namespace or etc")
        self.queue = queue
        self.requested_port = port
        self.port: int | None = None
        self.isolation: Isolation = isolation
        self._given_dir = Path(directory).resolve() if directory else None
        self.directory: Path | None = None
        self._proc: subprocess.Popen[bytes] | None = None
        self._etc_conf: Path | None = None
        self._queue_made = False
        self._lock = threading.RLock()

    # -- where things are ------------------------------------------------------------------------
    @property
    def address(self) -> str:
        if self.port is None:
            raise EmulatorError("the A4 emulator has not been started")
        return f"{LOOPBACK}:{self.port}"

    def _dir(self, name: str) -> Path:
        if self.directory is None:
            raise EmulatorError("the A4 emulator has not been started")
        return self.directory / name

    @property
    def output_dir(self) -> Path:
        """Where cups-pdf writes the printed PDFs."""
        return self._dir("out")

    @property
    def log_dir(self) -> Path:
        return self._dir("log")

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    # -- lifecycle ----------------------------------------------------------------------------------
    def start(self) -> str:
        """Start cupsd, create the queue; return "127.0.0.1:PORT" for the driver's `server`."""
        with self._lock:
            if self.running:
                return self.address
            self._check_system()
            try:
                self._prepare_dirs()
                self._write_config()
                self._start_cupsd()
                self._make_queue()
            except BaseException:
                self.stop()  # no half-started cupsd, no config left in /etc/cups
                raise
            log.info("A4 emulator: cupsd on %s, queue %s, PDFs in %s (%s isolation)", self.address, self.queue,
                     self.output_dir, self.isolation)
            return self.address

    def stop(self) -> None:
        """Stop the cupsd this emulator started and remove what it put outside its directory."""
        with self._lock:
            self._stop_cupsd()
            if self.directory is not None:
                shutil.rmtree(self._dir("faults"), ignore_errors=True)  # a waiting backend ends itself
            if self._etc_conf is not None:
                self._etc_conf.unlink(missing_ok=True)
                self._etc_conf = None
            if self._given_dir is None and self.directory is not None:
                shutil.rmtree(self.directory, ignore_errors=True)
                self.directory = None
                self._queue_made = False

    def unplug(self) -> None:
        """cupsd goes away, as when the print server is down; queue and pending jobs stay on disk."""
        with self._lock:
            self._stop_cupsd()

    def replug(self) -> str:
        """cupsd comes back on the same address, with the queue and any pending jobs."""
        with self._lock:
            if self.running:
                return self.address
            self._start_cupsd()
            return self.address

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- set-up -------------------------------------------------------------------------------------------
    def _check_system(self) -> None:
        if os.geteuid() != 0:
            raise EmulatorError("the A4 emulator must run as root: cups-pdf refuses to run otherwise, and cupsd "
                                "only runs its backend (mode 0700) as root")
        missing = [(path, package) for path, package in (
            (CUPSD, "cups-daemon"), ("/usr/sbin/lpadmin", "cups-client"), ("/usr/sbin/cupsdisable", "cups-client"),
            ("/usr/sbin/cupsenable", "cups-client"), ("/usr/sbin/cupsreject", "cups-client"),
            ("/usr/sbin/cupsaccept", "cups-client"), (str(CUPS_PDF_BACKEND), "printer-driver-cups-pdf"),
            ("/usr/lib/cups/filter/pdftops", "cups-filters-core-drivers"), ("/usr/bin/pdftocairo", "poppler-utils"),
            ("/usr/bin/gs", "ghostscript"),
        ) if not os.path.exists(path)]
        if self._ppd() is None:
            missing.append(("CUPS-PDF_opt.ppd", "printer-driver-cups-pdf"))
        if missing:
            packages = sorted({p for _, p in missing})
            raise EmulatorError(f"the A4 emulator needs {', '.join(m for m, _ in missing)}: "
                                f"apt-get install {' '.join(packages)}")
        try:
            import pwd

            pwd.getpwnam("lp")
        except KeyError:
            raise EmulatorError("there is no user lp, which cupsd runs its filters as: reinstall cups-daemon") \
                from None

    @staticmethod
    def _ppd() -> Path | None:
        return next((p for p in CUPS_PDF_PPDS if p.is_file()), None)

    def _prepare_dirs(self) -> None:
        if self.directory is None:
            if self._given_dir is not None:
                self._given_dir.mkdir(parents=True, exist_ok=True)
                self.directory = self._given_dir
            else:
                self.directory = Path(tempfile.mkdtemp(prefix="kiosk-a4-cups-"))
            os.chmod(self.directory, 0o711)  # lp (filters) must get through to the spool
        blocked = _first_dir_lp_cannot_enter(self.directory)
        if blocked is not None:
            raise EmulatorError(f"cupsd runs its filters as user lp, which cannot enter {blocked}: give the A4 "
                                f"emulator a directory every parent of which others may traverse (chmod o+x), "
                                f"e.g. under /tmp")
        for name in ("etc", "etc/ppd", "bin", "bin/backend", "state", "cache", "spool", "spool/tmp", "log",
                     "out", "faults", "gstmp"):
            (self.directory / name).mkdir(parents=True, exist_ok=True)
        for name in ("etc", "bin", "bin/backend", "log", "out", "faults", "gstmp"):
            os.chmod(self.directory / name, 0o755 if name != "gstmp" else 0o700)
        for name in ("filter", "daemon", "cgi-bin", "driver", "monitor", "notifier"):
            link = self._dir("bin") / name
            if not link.is_symlink() and (SYSTEM_SERVERBIN / name).exists():
                link.symlink_to(SYSTEM_SERVERBIN / name)

    def _write_config(self) -> None:
        etc = self._dir("etc")
        if self.isolation == "auto":
            self.isolation = "namespace" if namespaces_available(self._dir("faults")) else "etc"
        if self.port is None:
            self.port = self.requested_port or free_port()
        (etc / "cupsd.conf").write_text(self._cupsd_conf())
        (etc / "cups-files.conf").write_text(self._cups_files_conf())
        pdf_conf = self._cups_pdf_conf()
        uri_line = ""
        if self.isolation == "namespace":
            (etc / "cups-pdf.conf").write_text(pdf_conf)
        else:
            self._remove_stale_etc_confs()
            token = f"{ETC_CONF_PREFIX}{secrets.token_hex(4)}"
            self._etc_conf = SYSTEM_CUPS_ETC / f"cups-pdf-{token}.conf"
            self._etc_conf.write_text(pdf_conf)
            uri_line = f"DEVICE_URI=cups-pdf:/{token}; export DEVICE_URI"
        backend = self._dir("bin") / "backend" / "cups-pdf"
        backend.write_text(_BACKEND.replace("@FAULTS@", shlex.quote(str(self._dir("faults"))))
                           .replace("@REAL@", shlex.quote(str(CUPS_PDF_BACKEND)))
                           .replace("@URI@", uri_line))
        os.chmod(backend, 0o700)  # root-only, like the real one: cupsd runs it as root

    def _cupsd_conf(self) -> str:
        return f"""# Written by the kiosk's CupsPdfEmulator: a private cupsd, loopback only, no browsing.
Listen {LOOPBACK}:{self.port}
LogLevel info
MaxLogSize 0
Browsing No
BrowseLocalProtocols none
DefaultShared No
WebInterface No
ErrorPolicy abort-job
PreserveJobFiles No
PreserveJobHistory Yes
<Location />
  Order allow,deny
  Allow from 127.0.0.1
</Location>
<Policy default>
  JobPrivateAccess all
  JobPrivateValues none
  SubscriptionPrivateAccess all
  SubscriptionPrivateValues none
  <Limit All>
    Order deny,allow
  </Limit>
</Policy>
"""

    def _cups_files_conf(self) -> str:
        d = self.directory
        return f"""# Written by the kiosk's CupsPdfEmulator: every file of this cupsd is under {d}.
ServerRoot {d}/etc
ServerBin {d}/bin
StateDir {d}/state
CacheDir {d}/cache
RequestRoot {d}/spool
TempDir {d}/spool/tmp
ErrorLog {d}/log/error_log
AccessLog {d}/log/access_log
PageLog {d}/log/page_log
User lp
Group lp
SystemGroup root
FileDevice No
"""

    def _cups_pdf_conf(self) -> str:
        d = self.directory
        return f"""# Written by the kiosk's CupsPdfEmulator for {d}; safe to delete when it is not running.
Out {d}/out
AnonDirName {d}/out
Spool {d}/spool/cups-pdf
GSTmp {d}/gstmp
Log {d}/log
LogType 3
Label 2
Grp lp
"""

    def _remove_stale_etc_confs(self) -> None:
        """Per-queue files left by emulators that died without stop(): their Out dir is gone."""
        for path in SYSTEM_CUPS_ETC.glob(f"cups-pdf-{ETC_CONF_PREFIX}*.conf"):
            try:
                text = path.read_text()
            except OSError:
                continue
            match = re.search(r"^Out (.+)$", text, re.MULTILINE)
            if match and not Path(match.group(1)).exists():
                path.unlink(missing_ok=True)

    def _start_cupsd(self) -> None:
        etc = self._dir("etc")
        if self.isolation == "namespace":
            command = ["unshare", "--mount", "--propagation", "private", "--", "/bin/sh", "-c",
                       'mount --bind "$1" /etc/cups && exec "$2" -f -c "$1/cupsd.conf" -s "$1/cups-files.conf"',
                       "sh", str(etc), CUPSD]
        else:
            command = [CUPSD, "-f", "-c", str(etc / "cupsd.conf"), "-s", str(etc / "cups-files.conf")]
        if threading.current_thread() is threading.main_thread() and shutil.which("setpriv"):
            # cupsd ends with the process that started it, even one killed with SIGKILL (a kiosk
            # killed mid-visit must not leave an emulated print server behind); only from the
            # main thread, since the death signal follows the thread that started it
            command = ["setpriv", "--pdeathsig", "TERM", "--", *command]
        with open(self.log_dir / "cupsd.out", "ab") as out:
            # its own session: a Ctrl-C meant for the kiosk's console does not reach it
            self._proc = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                                          start_new_session=True)
        deadline = time.monotonic() + READY_TIMEOUT_S
        while True:
            if self._proc.poll() is not None:
                self._proc = None
                raise EmulatorError(f"the A4 emulator's cupsd exited at start: {self._log_tail()}")
            try:
                socket.create_connection((LOOPBACK, self.port), timeout=0.5).close()
                return
            except OSError:
                pass
            if time.monotonic() > deadline:
                self._stop_cupsd()
                raise EmulatorError(f"the A4 emulator's cupsd did not listen on {self.address} within "
                                    f"{READY_TIMEOUT_S:g} s: {self._log_tail()}")
            time.sleep(0.05)

    def _stop_cupsd(self) -> None:
        proc, self._proc = self._proc, None
        if proc is None:
            return
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=5)
        if self.port is not None:  # gone means gone: nothing answers on the port any more
            deadline = time.monotonic() + 5
            while time.monotonic() < deadline:
                try:
                    socket.create_connection((LOOPBACK, self.port), timeout=0.2).close()
                except OSError:
                    break
                time.sleep(0.05)

    def _log_tail(self, lines: int = 8) -> str:
        texts = []
        for name in ("cupsd.out", "error_log"):
            path = self.log_dir / name
            if path.is_file():
                texts += [line for line in path.read_text(errors="replace").splitlines() if line.strip()][-lines:]
        return " | ".join(texts[-lines:]) or "no log output"

    def _make_queue(self) -> None:
        if self._queue_made:
            return
        self._client("lpadmin", "-p", self.queue, "-E", "-v", "cups-pdf:/", "-P", str(self._ppd()),
                     "-o", "printer-error-policy=abort-job", "-o", "pdftops-renderer-default=pdftocairo",
                     "-o", "printer-is-shared=false", "-D", "Kiosk emulated A4 printer (cups-pdf)")
        self._queue_made = True

    def _client(self, tool: str, *args: str) -> str:
        """Run a CUPS client tool against this cupsd only (never the system's)."""
        if not self.running:
            raise EmulatorError(f"the A4 emulator's cupsd is not running (unplugged?); cannot run {tool}")
        env = {k: v for k, v in os.environ.items() if k not in ("CUPS_SERVER", "IPP_PORT")}
        result = subprocess.run([tool, "-h", self.address, *args], capture_output=True, text=True, timeout=30,
                                env=env, check=False)
        if result.returncode != 0:
            raise EmulatorError(f"{tool} {' '.join(args)} failed: {(result.stderr or result.stdout).strip()}")
        return result.stdout

    # -- scripting ------------------------------------------------------------------------------------
    def stop_queue(self, reason: str = "stopped by the emulator") -> None:
        """Stop the queue, as a technician or a printer fault does; jobs wait as queued."""
        self._client("cupsdisable", "-r", reason, self.queue)

    def resume(self) -> None:
        """Enable the queue and let it accept jobs again."""
        self._client("cupsenable", self.queue)
        self._client("cupsaccept", self.queue)

    def reject(self, reason: str = "rejecting jobs (emulator)") -> None:
        """The queue refuses new jobs; queued ones still print."""
        self._client("cupsreject", "-r", reason, self.queue)

    def accept(self) -> None:
        self._client("cupsaccept", self.queue)

    def _flag(self, name: str, on: bool, text: str = "") -> None:
        path = self._dir("faults") / name
        if on:
            path.write_text(text)
        else:
            path.unlink(missing_ok=True)

    def paper_out(self) -> None:
        """The tray is empty: the next job waits "printing" with media-empty-error until refill()."""
        self._flag("paper-out", True)

    def paper_low(self, on: bool = True) -> None:
        """The tray runs low: jobs print and report media-low."""
        self._flag("paper-low", on)

    def jam(self) -> None:
        """A sheet jams: the next job waits "printing" with media-jam-error until unjam()."""
        self._flag("jam", True)

    def unjam(self) -> None:
        self._flag("jam", False)

    def refill(self) -> None:
        """A full tray: paper out and paper low are cleared."""
        self._flag("paper-out", False)
        self._flag("paper-low", False)

    def fail_next_job(self, message: str = "printer reports an internal error (emulator)") -> None:
        """The next job fails in the printer; the queue aborts it with `message`."""
        self._flag("fail-next", True, message.replace("\n", " "))

    def clear_faults(self) -> None:
        """Paper, jam and failure flags off (the queue's own state is left as it is)."""
        for name in ("paper-out", "paper-low", "jam", "fail-next"):
            self._flag(name, False)

    def printed(self) -> list[Path]:
        """The PDFs cups-pdf wrote so far, in job order."""
        files = [p for p in self.output_dir.glob("*.pdf") if _JOB_FILE.search(p.name)]
        return sorted(files, key=lambda p: int(_JOB_FILE.search(p.name).group(1)))  # type: ignore[union-attr]

    def printed_for(self, job_id: int) -> Path | None:
        """The PDF of one job, when it is out."""
        for path in self.printed():
            match = _JOB_FILE.search(path.name)
            if match and int(match.group(1)) == job_id:
                return path
        return None

    # -- console --------------------------------------------------------------------------------------
    def command(self, line: str) -> str:
        """Carry out one console line; the answer is text, bad input is answered, never raised."""
        words = line.split()
        if not words:
            return ""
        verb, rest = words[0].lower(), words[1:]
        text = " ".join(rest)
        try:
            if verb == "help":
                return CONSOLE_HELP
            if verb == "status":
                return self._client("lpstat", "-p", self.queue, "-a", self.queue).strip()
            if verb == "stop":
                self.stop_queue(text or "stopped from the console")
                return f"queue {self.queue} stopped"
            if verb == "resume":
                self.resume()
                return f"queue {self.queue} enabled and accepting jobs"
            if verb == "reject":
                self.reject(text or "rejecting jobs (console)")
                return f"queue {self.queue} rejects new jobs"
            if verb == "accept":
                self.accept()
                return f"queue {self.queue} accepts jobs"
            if verb == "paper" and rest in (["out"], ["low"], ["ok"]):
                {"out": self.paper_out, "low": self.paper_low, "ok": self.refill}[rest[0]]()
                return {"out": "tray empty", "low": "tray running low", "ok": "tray refilled"}[rest[0]]
            if verb == "jam":
                self.jam()
                return "a sheet will jam"
            if verb == "unjam":
                self.unjam()
                return "jam cleared"
            if verb == "fail":
                self.fail_next_job(text or "printer reports an internal error (console)")
                return "the next job will fail"
            if verb == "printed":
                files = self.printed()
                return "\n".join(str(p) for p in files) if files else f"nothing printed yet (in {self.output_dir})"
            if verb == "unplug":
                self.unplug()
                return "cupsd stopped"
            if verb == "replug":
                return f"cupsd back on {self.replug()}"
        except (EmulatorError, OSError, subprocess.SubprocessError) as exc:
            return f"error: {exc}"
        return f"unknown command {line.strip()!r}; type help"



def _main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m devices.a4_printer.emulator",
        description="Run a private cupsd on 127.0.0.1 with a cups-pdf queue, as an emulated A4 printer.")
    parser.add_argument("--dir", help="directory for the cupsd's files and the PDFs (default: a temporary one)")
    parser.add_argument("--port", type=int, default=0, help="TCP port on 127.0.0.1 (default: any free port)")
    parser.add_argument("--queue", default="KioskPDF", help="queue name (default KioskPDF)")
    parser.add_argument("--isolation", choices=("auto", "namespace", "etc"), default="auto",
                        help="how cups-pdf finds its config (see the module notes)")
    args = parser.parse_args(argv)
    return run_standalone(lambda: CupsPdfEmulator(args.dir, port=args.port, queue=args.queue, isolation=args.isolation),
                          lambda emu, address: [f"server {address} queue {emu.queue} pdfs {emu.output_dir}", CONSOLE_HELP],
                          (EmulatorError, OSError, ValueError))


if __name__ == "__main__":
    sys.exit(_main())
