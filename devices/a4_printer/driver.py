"""CUPS driver for A4 printers (pycups): stream PDFs to a queue, follow jobs, read the queue's state.

Where the server is (`server`): "" is the system's default (CUPS_SERVER, client.conf,
the local socket or localhost:631), "host:port" (or "[v6addr]:port", or "host" for port
631) a print server on the network, "/path/to/cups.sock" a local domain socket.

pycups keeps the server in libcups' per-thread globals, and some calls (createJob goes
through cupsCreateJob, which looks the destination up again) consult those globals
rather than the connection they were given. Every call therefore runs under one module
lock, with the globals pointed at this printer's server first, so two CupsPrinter
objects on different servers never send a request to each other's server, from one
thread or many.

The document is streamed (Create-Job + Send-Document): a certificate holds personal data
and is never written to a file by this driver. Only the job id, queue and title (which
`check_title` keeps free of personal data) are logged.

Status comes from the queue's printer-state, printer-state-reasons (media-empty -> OUT,
media-low -> LOW, media-jam -> JAMMED, door/toner faults, offline) and whether it accepts
jobs; see devices.a4_printer.interface for the mapping. `poll()` refreshes it; when the
server cannot be reached or the printer reports itself offline, poll raises
DeviceDisconnected so the supervisor reopens with back-off. submit(), job() and wait()
connect on demand, so a job being followed survives the supervisor closing and reopening
the device (and cupsd restarting: it keeps its queue on disk).

Finished jobs are purged from the server once wait() has seen them end: CUPS otherwise
keeps the document in its spool for PreserveJobFiles (a day by default).
"""
from __future__ import annotations

import logging
import os
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal, TypeVar

import cups
from pydantic import BaseModel, ConfigDict, Field, field_validator

from devices.a4_printer.interface import (
    REASON_TEXT,
    A4Printer,
    JobReason,
    JobState,
    JobStatus,
    PrinterOffline,
    PrinterRejecting,
    PrintJob,
    QueueNotFound,
    check_title,
)
from devices.base import (
    DeviceDisconnected,
    DeviceError,
    DeviceState,
    MediaState,
    SelfTestResult,
)

log = logging.getLogger(__name__)

T = TypeVar("T")

_GLOBALS = threading.RLock()  # libcups' server globals: pointed at our server for each call
_CHUNK = 64 * 1024
_HTTP_CONTINUE = 100
_DEFAULT_PORT = 631

# IPP status codes (RFC 8011 / CUPS) the driver tells apart
_IPP_NOT_FOUND = 0x0406
_IPP_NOT_ACCEPTING = 0x0506
_IPP_DEACTIVATED = 0x0507
_IPP_INTERNAL_ERROR = 0x0500
_IPP_SERVICE_UNAVAILABLE = 0x0502

# job-state (RFC 8011 5.3.7)
_PENDING, _HELD, _PROCESSING, _STOPPED, _CANCELED, _ABORTED, _COMPLETED = 3, 4, 5, 6, 7, 8, 9
_PRINTER_STOPPED = 5

PRINTER_ATTRS = [
    "printer-state", "printer-state-reasons", "printer-state-message", "printer-is-accepting-jobs",
    "device-uri", "printer-make-and-model", "document-format-supported",
]
JOB_ATTRS = [
    "job-state", "job-state-reasons", "job-printer-state-message", "job-media-sheets-completed",
]


@dataclass
class Assessment:
    """What a queue's attributes mean for the kiosk: its status, and what holds a job."""

    device: DeviceState = DeviceState.ONLINE
    media: MediaState = MediaState.PRESENT
    faults: list[str] = field(default_factory=list)
    reason: JobReason | None = None  # the most important thing that stops jobs now
    offline: bool = False
    stopped: bool = False
    accepting: bool = True

    @property
    def fault(self) -> str:
        return "; ".join(self.faults)


# printer-state-reasons keyword (without -error/-warning/-report) ->
# (media state, reason holding jobs, blocking device state, what to do)
_KNOWN_REASONS: dict[str, tuple[MediaState | None, JobReason | None, bool, str]] = {
    "media-empty": (MediaState.OUT, JobReason.OUT_OF_PAPER, False,
                    ("out of paper: load A4 paper into the tray (CUPS clears this when the next page prints: "
                     "print the test page after refilling)")),
    "media-needed": (MediaState.OUT, JobReason.OUT_OF_PAPER, False,
                     "asks for paper: load A4 paper into the tray"),
    "media-jam": (MediaState.JAMMED, JobReason.PAPER_JAM, True,
                  "paper jam: open the printer, remove the jammed sheet, close it"),
    "media-low": (MediaState.LOW, None, False, "paper low: refill the A4 tray soon"),
    "cover-open": (None, JobReason.DOOR_OPEN, True, "a cover is open: close it"),
    "door-open": (None, JobReason.DOOR_OPEN, True, "a door is open: close it"),
    "interlock-open": (None, JobReason.DOOR_OPEN, True, "an interlock is open: close the printer's doors"),
    "toner-empty": (None, JobReason.TONER_EMPTY, True, "toner empty: replace the cartridge"),
    "marker-supply-empty": (None, JobReason.TONER_EMPTY, True, "toner/ink empty: replace the cartridge"),
    "toner-low": (None, None, False, "toner low: have a cartridge ready"),
    "marker-supply-low": (None, None, False, "toner/ink low: have a cartridge ready"),
}
_IGNORED_REASONS = {"none", "paused", "connecting-to-device", "cups-waiting-for-job-completed",
                    "moving-to-paused", "processing-to-stop-point", "cups-missing-filter-warning"}
_SEVERITIES = ("-error", "-warning", "-report")
_MEDIA_RANK = {MediaState.PRESENT: 0, MediaState.LOW: 1, MediaState.OUT: 2, MediaState.JAMMED: 3}


def _as_list(value: Any) -> list[str]:
    if value is None:
        return []
    if isinstance(value, (list, tuple)):
        return [str(v) for v in value]
    return [str(value)]


def _enum(value: Any) -> int | None:
    """An IPP enum or integer attribute as pycups gives it (an int); None for a value of another
    syntax (a keyword, a list...) that a non-CUPS print server may send: the caller says "unknown"."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value.strip().isdecimal():
        return int(value)
    return None


def _shown(value: Any) -> str:
    """An attribute's value for a technician's message, cut short."""
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def split_reason(keyword: str) -> tuple[str, str]:
    """("media-empty", "error") from "media-empty-error"; no suffix means error (RFC 8011)."""
    for suffix in _SEVERITIES:
        if keyword.endswith(suffix):
            return keyword[: -len(suffix)], suffix[1:]
    return keyword, "error"


def assess(attrs: dict[str, Any], where: str, queue: str) -> Assessment:
    """The kiosk's reading of a queue's printer attributes (pure, so it is unit-testable)."""
    result = Assessment()
    message = str(attrs.get("printer-state-message") or "").strip()
    said = f" (the printer says: {message})" if message else ""
    result.accepting = bool(attrs.get("printer-is-accepting-jobs", True))
    state = _enum(attrs.get("printer-state", 3))
    result.stopped = state == _PRINTER_STOPPED
    if state is None:
        result.faults.append(f"{where}: the print server gave printer-state {_shown(attrs.get('printer-state'))}, "
                             f"not an IPP enum, so the queue's state is unknown; check it with lpstat -p {queue}")
    for keyword in _as_list(attrs.get("printer-state-reasons")):
        base, severity = split_reason(keyword)
        if keyword in _IGNORED_REASONS or base in _IGNORED_REASONS:
            continue
        if base == "offline":
            result.offline = True
            result.reason = result.reason or JobReason.PRINTER_OFFLINE
            result.faults.append(f"{where}: the printer is offline ({keyword}); check its power and its "
                                 "USB/network cable")
            continue
        known = _KNOWN_REASONS.get(base)
        if known is None:
            if base.startswith("cups-") and not keyword.endswith("-error"):
                continue  # the scheduler's own bookkeeping (cups-remote-pending...), not a printer fault
            if severity == "error":
                result.device = DeviceState.HARDWARE_ERROR
                result.reason = result.reason or JobReason.PRINTER_ERROR
                result.faults.append(f"{where}: the printer reports {keyword}; check its panel")
            elif severity == "warning":
                result.faults.append(f"{where}: the printer warns {keyword}")
            continue
        media, reason, blocking, todo = known
        if media is not None and _MEDIA_RANK[media] > _MEDIA_RANK[result.media]:
            result.media = media
        # paper out stops printing whatever severity the printer gives it; others when they are errors
        if reason is not None and (severity == "error" or media is MediaState.OUT):
            result.reason = result.reason or reason
        if blocking and severity == "error":
            result.device = DeviceState.HARDWARE_ERROR
        result.faults.append(f"{where}: {todo} ({keyword})")
    if result.stopped:
        result.device = DeviceState.HARDWARE_ERROR
        result.reason = JobReason.PRINTER_STOPPED if result.reason is None else result.reason
        result.faults.insert(0, f"{where}: queue {queue} is stopped{said}; fix the printer, then re-enable the "
                                f"queue (cupsenable {queue}, or the technician menu)")
    if not result.accepting:
        result.device = DeviceState.HARDWARE_ERROR
        result.faults.insert(0, f"{where}: queue {queue} rejects new jobs{said}; once the printer is fit, "
                                f"let it accept jobs again (cupsaccept {queue}, or the technician menu)")
    return result


def job_status(job_id: int, attrs: dict[str, Any], printer: Assessment) -> JobStatus:
    """A job's attributes, read with the queue's state, as the kiosk's JobStatus (pure)."""
    state = _enum(attrs.get("job-state", _PENDING))
    reasons = _as_list(attrs.get("job-state-reasons"))
    message = str(attrs.get("job-printer-state-message") or "").strip()
    sheets = _enum(attrs.get("job-media-sheets-completed") or 0) or 0
    if state is None:  # not done, not failed as far as the kiosk can tell: asked again until its deadline
        return JobStatus(job_id, JobState.QUEUED, printer.reason,
                         f"the print server gave job-state {_shown(attrs.get('job-state'))}, not an IPP enum, "
                         f"so the job's state is unknown; check it with lpstat -W all", sheets)
    errors = [r for r in reasons if r.endswith("-error") or r == "job-completed-with-errors"]
    if state == _COMPLETED:
        if errors:
            return JobStatus(job_id, JobState.FAILED, JobReason.PRINTER_ERROR,
                             f"completed with errors ({', '.join(errors)}){': ' + message if message else ''}",
                             sheets)
        return JobStatus(job_id, JobState.DONE, None, "", sheets)
    if state == _CANCELED:
        return JobStatus(job_id, JobState.FAILED, JobReason.CANCELLED,
                         message or "cancelled (by the kiosk, a technician or the print server)", sheets)
    if state == _ABORTED:
        return JobStatus(job_id, JobState.FAILED, JobReason.PRINTER_ERROR,
                         message or f"aborted by the print server ({', '.join(reasons) or 'no reason given'})", sheets)
    if state == _HELD:
        return JobStatus(job_id, JobState.QUEUED, JobReason.HELD,
                         f"held ({', '.join(reasons) or 'no reason given'}); release it with lp -i {job_id} -H resume",
                         sheets)
    if state == _STOPPED:
        if errors:  # a filter failed on the document: CUPS stops the job, it will not come out right
            return JobStatus(job_id, JobState.FAILED, JobReason.PRINTER_ERROR,
                             f"stopped with errors ({', '.join(errors)}){': ' + message if message else ''}", sheets)
        reason = printer.reason or JobReason.PRINTER_STOPPED
        detail = printer.fault or message or f"job stopped ({', '.join(reasons) or 'no reason given'})"
        return JobStatus(job_id, JobState.PRINTING, reason, detail, sheets)
    job_state = JobState.PRINTING if state == _PROCESSING else JobState.QUEUED
    return JobStatus(job_id, job_state, printer.reason, printer.fault if printer.reason else "", sheets)


def parse_server(server: str) -> tuple[str, int] | None:
    """(host or socket path, port) from the `server` parameter; None for the system's default."""
    server = server.strip()
    if not server:
        return None
    if server.startswith("/"):
        return server, 0
    if server.startswith("["):  # [v6addr]:port
        host, _, rest = server[1:].partition("]")
        port = rest[1:] if rest.startswith(":") else ""
    elif server.count(":") == 1:
        host, _, port = server.partition(":")
    else:
        host, port = server, ""
    if not host:
        raise ValueError(f"no host in {server!r}")
    if port and not (port.isdecimal() and 0 < int(port) < 65536):
        raise ValueError(f"port {port!r} in {server!r} is not 1..65535")
    return host, int(port) if port else _DEFAULT_PORT


class CupsPrinter(A4Printer):
    """An A4 printer behind a CUPS queue, reached through pycups."""

    class Params(BaseModel):
        """The `[devices.<name>]` parameters of the cups driver."""

        model_config = ConfigDict(extra="forbid")

        queue: str = Field(min_length=1, max_length=127, pattern=r"^[^\s/#]+$",
                           description="CUPS queue (printer) name, as `lpstat -p` lists it, e.g. KioskPDF")
        server: str = Field(default="", description="Print server: empty for the system's default, "
                            "host:port (e.g. 127.0.0.1:631) or a domain socket path (/run/cups/cups.sock)")
        job_timeout_s: float = Field(default=180.0, gt=0, le=3600,
                                     description="Seconds a job may take to print before it is cancelled")
        media: str = Field(default="A4", min_length=1, description="Paper size asked for every job (media)")
        sides: Literal["one-sided", "two-sided-long-edge", "two-sided-short-edge"] = Field(
            default="one-sided", description="Simplex or duplex (sides)")
        options: dict[str, str] = Field(default_factory=dict,
                                        description="Further CUPS job options, e.g. {InputSlot = \"Tray2\"}")
        connect_timeout_s: float = Field(default=3.0, gt=0, le=60,
                                         description="Seconds to wait for a network print server to answer a connect")
        poll_interval_s: float = Field(default=0.25, gt=0, le=10,
                                       description="Seconds between job status queries while following a job")

        @field_validator("server")
        @classmethod
        def _valid_server(cls, value: str) -> str:
            parse_server(value)
            return value.strip()

    def __init__(
        self,
        name: str,
        *,
        queue: str,
        server: str = "",
        job_timeout_s: float = 180.0,
        media: str = "A4",
        sides: Literal["one-sided", "two-sided-long-edge", "two-sided-short-edge"] = "one-sided",
        options: dict[str, str] | None = None,
        connect_timeout_s: float = 3.0,
        poll_interval_s: float = 0.25,
    ) -> None:
        super().__init__(name)
        self.params = self.Params(queue=queue, server=server, job_timeout_s=job_timeout_s, media=media,
                                  sides=sides, options=options or {}, connect_timeout_s=connect_timeout_s,
                                  poll_interval_s=poll_interval_s)
        self.job_timeout_s = self.params.job_timeout_s
        self.poll_interval_s = self.params.poll_interval_s
        self._target = parse_server(self.params.server)
        self._conn: Any = None  # a cups.Connection once connected

    # -- words for technicians ------------------------------------------------------------------
    @property
    def queue(self) -> str:
        return self.params.queue

    def _server_name(self) -> str:
        if self._target is None:
            return "the system's default print server"
        host, port = self._target
        return host if host.startswith("/") else f"{host}:{port}"

    def _where(self) -> str:
        return f"A4 printer {self.name} (CUPS queue {self.queue} on {self._server_name()})"

    # -- one call, with the server's globals pointed at ours --------------------------------------
    def _call(self, what: str, op: Callable[[Any], T]) -> T:
        """Run `op(connection)`; a lost or unreachable server becomes DeviceDisconnected."""
        with _GLOBALS:
            host, port = self._point_globals()
            if self._conn is None:
                self._conn = self._connect(host, port)
            try:
                return op(self._conn)
            except DeviceDisconnected:
                self._conn = None
                raise
            except cups.IPPError as exc:
                status = exc.args[0] if exc.args else None
                # libcups reports a connection that broke mid-request as internal-error ("Success")
                if status in (_IPP_SERVICE_UNAVAILABLE, _IPP_INTERNAL_ERROR, cups.HTTP_ERROR):
                    self._conn = None
                    raise DeviceDisconnected(
                        f"{self._where()}: lost the print server during {what} ({self._ipp_text(exc)}); "
                        "check that cupsd is running and reachable") from None
                raise
            except (cups.HTTPError, RuntimeError) as exc:
                self._conn = None
                raise DeviceDisconnected(f"{self._where()}: {what} failed ({exc}); check that cupsd is running "
                                         "and reachable") from None

    def _point_globals(self) -> tuple[str, int]:
        if self._target is None:
            cups.setServer("")  # back to the default: CUPS_SERVER, client.conf, socket, localhost
            cups.setPort(0)
            return cups.getServer(), cups.getPort()
        host, port = self._target
        cups.setServer(host)
        cups.setPort(port or _DEFAULT_PORT)
        return host, port

    def _connect(self, host: str, port: int) -> Any:
        if host.startswith("/"):
            if not os.path.exists(host):
                raise DeviceDisconnected(f"cannot reach {self._where()}: socket {host} does not exist; "
                                         "check that cupsd is running")
        else:
            # libcups waits up to 30 s on a dead host: find out quickly, in words
            try:
                socket.create_connection((host, port), timeout=self.params.connect_timeout_s).close()
            except OSError as exc:
                raise DeviceDisconnected(
                    f"cannot reach {self._where()}: {exc.strerror or exc}; check that cupsd is running there "
                    f"and listening on port {port}, and the network between") from None
        try:
            return cups.Connection(host=host, port=port) if port else cups.Connection(host=host)
        except RuntimeError as exc:
            raise DeviceDisconnected(f"cannot connect to {self._where()}: {exc}; check that cupsd is running") \
                from None

    @staticmethod
    def _ipp_text(exc: BaseException) -> str:
        args: tuple[Any, ...] = tuple(getattr(exc, "args", ()))
        if len(args) == 2:
            status, text = args
            return f"IPP status 0x{int(status):04x}: {text}"
        return str(exc)

    def _printer_attrs(self) -> dict[str, Any]:
        try:
            return self._call("reading the queue's state", lambda c: c.getPrinterAttributes(
                self.queue, requested_attributes=PRINTER_ATTRS))
        except cups.IPPError as exc:
            if exc.args and exc.args[0] == _IPP_NOT_FOUND:
                raise QueueNotFound(f"{self._where()}: the server has no queue {self.queue}; check the queue "
                                    "name in [devices." + self.name + "] queue (lpstat -p lists them)") from None
            raise DeviceError(f"{self._where()}: reading the queue's state failed ({self._ipp_text(exc)})") from None

    def _assess(self) -> Assessment:
        """Read the queue, publish the status it implies; raise when it is offline."""
        try:
            result = assess(self._printer_attrs(), self._where(), self.queue)
        except DeviceDisconnected as exc:
            self.set_status(DeviceState.OFFLINE, MediaState.UNKNOWN, str(exc))
            raise
        if result.offline:
            self.set_status(DeviceState.OFFLINE, result.media, result.fault)
        else:
            self.set_status(result.device, result.media, result.fault)
        return result

    # -- lifecycle -----------------------------------------------------------------------------------
    def _open(self) -> None:
        with _GLOBALS:
            self._conn = None  # a fresh connection: the server may have restarted
        result = self._assess()  # publishes the status outside the lock, listeners may call back
        if result.offline:
            raise PrinterOffline(result.fault)
        log.info("%s open: %s", self._where(), result.device.value)

    def _close(self) -> None:
        with _GLOBALS:
            self._conn = None  # pycups closes the HTTP connection when the object goes

    def poll(self) -> None:
        """Refresh the status from the queue; DeviceDisconnected when the server or printer is gone."""
        result = self._assess()
        if result.offline:
            raise PrinterOffline(result.fault)

    # -- verbs ------------------------------------------------------------------------------------------
    def submit(self, pdf: bytes, title: str) -> PrintJob:
        """Stream a PDF to the queue (see A4Printer.submit); nothing is written to disk here."""
        check_title(title)
        if not isinstance(pdf, (bytes, bytearray)) or not bytes(pdf[:5]) == b"%PDF-":
            raise ValueError("submit() takes the bytes of a PDF document (they start with %PDF-)")
        data = bytes(pdf)
        options = {"media": self.params.media, "sides": self.params.sides, **self.params.options}

        def stream(conn: Any) -> int:
            job_id = conn.createJob(self.queue, title, options)
            if not job_id:
                raise DeviceError(f"{self._where()}: the server created no job")
            try:
                status = conn.startDocument(self.queue, job_id, title, "application/pdf", 1)
                if status != _HTTP_CONTINUE:
                    raise DeviceError(f"{self._where()}: the server refused the document of job {job_id} "
                                      f"(HTTP status {status})")
                for start in range(0, len(data), _CHUNK):
                    chunk = data[start:start + _CHUNK]
                    status = conn.writeRequestData(chunk, len(chunk))
                    if status != _HTTP_CONTINUE:
                        raise DeviceDisconnected(f"{self._where()}: sending job {job_id} broke off after "
                                                 f"{start} of {len(data)} bytes (HTTP status {status}); "
                                                 "check that cupsd is running and reachable")
                ipp = conn.finishDocument(self.queue)
                if ipp not in (cups.IPP_OK, 1, 2):  # successful-ok(-ignored/-conflicting)
                    raise DeviceError(f"{self._where()}: the server did not accept job {job_id}'s document "
                                      f"(IPP status 0x{ipp:04x})")
            except BaseException:
                self._discard(conn, job_id)
                raise
            return job_id

        try:
            job_id = self._call("submitting a job", stream)
        except cups.IPPError as exc:
            raise self._submit_error(exc) from None
        log.info("%s: job %d queued (%s, %d bytes)", self._where(), job_id, title, len(data))
        return PrintJob(job_id, self.queue, title, time.monotonic())

    def _discard(self, conn: Any, job_id: int) -> None:
        """A job whose document did not arrive whole must not print a part of it."""
        try:
            conn.cancelJob(job_id, True)
        except (cups.IPPError, cups.HTTPError, RuntimeError) as exc:
            log.warning("%s: could not cancel the incomplete job %d: %s", self._where(), job_id, exc)

    def _submit_error(self, exc: BaseException) -> DeviceError:
        status = exc.args[0] if exc.args else None
        if status in (_IPP_NOT_ACCEPTING, _IPP_DEACTIVATED):
            try:
                result = self._assess()
                why = result.fault
            except DeviceError as again:
                why = str(again)
            return PrinterRejecting(f"{self._where()} rejects new jobs ({self._ipp_text(exc)}); {why}".rstrip("; "))
        if status == _IPP_NOT_FOUND:
            return QueueNotFound(f"{self._where()}: the server has no queue {self.queue}; check the queue name "
                                 f"in [devices.{self.name}] queue (lpstat -p lists them)")
        return DeviceError(f"{self._where()}: submitting a job failed ({self._ipp_text(exc)})")

    def job(self, job_id: int) -> JobStatus:
        """Where the job is now (see A4Printer.job); also refreshes the printer's status."""
        try:
            attrs = self._call(f"asking about job {job_id}",
                               lambda c: c.getJobAttributes(job_id, requested_attributes=JOB_ATTRS))
        except cups.IPPError as exc:
            if exc.args and exc.args[0] == _IPP_NOT_FOUND:
                return JobStatus(job_id, JobState.FAILED, JobReason.JOB_LOST,
                                 f"{self._where()} no longer knows job {job_id} (server state lost or the job "
                                 "purged); print again")
            raise DeviceError(f"{self._where()}: asking about job {job_id} failed ({self._ipp_text(exc)})") from None
        try:
            printer = self._assess()
        except QueueNotFound as exc:
            printer = Assessment(reason=JobReason.PRINTER_ERROR, faults=[str(exc)])
        status = job_status(job_id, attrs, printer)
        if status.state is JobState.FAILED and _enum(attrs.get("job-state")) == _STOPPED:
            # CUPS keeps such a job and could restart it later: cancel it, so it never prints unattended
            try:
                self._call(f"cancelling job {job_id}", lambda c: c.cancelJob(job_id, True))
            except (cups.IPPError, DeviceError) as exc:
                log.warning("%s: could not cancel the failed job %d: %s", self._where(), job_id, exc)
        log.debug("%s: %s", self._where(), status.describe())
        return status

    def cancel(self, job_id: int) -> None:
        """Cancel (and purge) a job that has not finished; finished jobs are left alone."""
        if self.job(job_id).finished:
            return
        try:
            self._call(f"cancelling job {job_id}", lambda c: c.cancelJob(job_id, True))
        except cups.IPPError as exc:
            if exc.args and exc.args[0] == _IPP_NOT_FOUND:
                return
            raise DeviceError(f"{self._where()}: cancelling job {job_id} failed ({self._ipp_text(exc)})") from None
        log.info("%s: job %d cancelled", self._where(), job_id)

    def _forget(self, job_id: int) -> None:
        """Purge a finished job: CUPS otherwise keeps the document (personal data) in its spool
        for PreserveJobFiles (a day by default) and its title in the history."""
        try:
            self._call(f"purging job {job_id}", lambda c: c.cancelJob(job_id, True))
        except (cups.IPPError, DeviceError) as exc:
            log.info("%s: job %d not purged (%s); the server's PreserveJobFiles decides when it goes",
                     self._where(), job_id, exc)

    # -- self-test -----------------------------------------------------------------------------------------
    def self_test(self) -> list[SelfTestResult]:
        """Server, queue, accepting, enabled, paper and PDF support; prints nothing (see the --a4 test page)."""
        results: list[SelfTestResult] = []
        try:
            attrs = self._printer_attrs()
        except QueueNotFound as exc:
            results.append(SelfTestResult("print server reachable", True, f"{self._server_name()} answers"))
            results.append(SelfTestResult("queue exists", False, str(exc)))
            return results
        except DeviceError as exc:
            results.append(SelfTestResult("print server reachable", False, str(exc)))
            return results
        results.append(SelfTestResult("print server reachable", True, f"{self._server_name()} answers"))
        results.append(SelfTestResult(
            "queue exists", True,
            f"queue {self.queue}: {attrs.get('printer-make-and-model') or 'unknown model'} "
            f"at {attrs.get('device-uri') or 'an unknown device'}"))
        result = assess(attrs, self._where(), self.queue)
        results.append(SelfTestResult(
            "queue accepts jobs", result.accepting,
            "accepts jobs" if result.accepting else next(f for f in result.faults if "rejects" in f)))
        results.append(SelfTestResult(
            "queue enabled", not result.stopped,
            "enabled" if not result.stopped else next(f for f in result.faults if "stopped" in f)))
        paper_ok = result.media not in (MediaState.OUT, MediaState.JAMMED)
        paper_faults = [f for f in result.faults if "paper" in f or "jam" in f]
        results.append(SelfTestResult(
            "paper", paper_ok, "; ".join(paper_faults) if paper_faults else "no paper problem reported"))
        formats = _as_list(attrs.get("document-format-supported"))
        pdf_ok = not formats or "application/pdf" in formats or "application/octet-stream" in formats
        results.append(SelfTestResult(
            "takes PDF", pdf_ok,
            "application/pdf accepted" if pdf_ok else
            f"the queue does not list application/pdf ({', '.join(formats[:6])}...); install cups-filters"))
        if result.offline:
            results.append(SelfTestResult("printer online", False, result.fault))
        if result.reason is not None and result.device is DeviceState.HARDWARE_ERROR and not result.stopped:
            results.append(SelfTestResult("printer fault", False, f"{REASON_TEXT[result.reason]}: {result.fault}"))
        self.set_status(DeviceState.OFFLINE if result.offline else result.device, result.media, result.fault)
        return results
