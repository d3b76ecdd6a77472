"""What every A4 printer offers the kiosk, whatever its stack: submit a PDF, follow the job.

A certificate is only handed over when the printer says the last sheet is out, so a
print is a job the visit follows, not a fire-and-forget call:

- `submit(pdf, title)` queues the document and returns a `PrintJob` at once;
- `job(job_id)` says where it is now: a `JobStatus` with a `JobState` (queued,
  printing, done, failed) and, when something holds or ended it, a `JobReason` (a stable
  code the citizen-facing layer maps to its own words: out of paper, jammed, printer
  stopped, cancelled...) plus `detail`, the technician's text;
- `wait(job, timeout_s, on_change=...)` follows it to the end, calling `on_change` with
  every change (state or reason), and never leaves a job behind: a job that does not
  finish in time is cancelled, so a certificate cannot come out after the citizen has
  gone. The result is the last status; on a timeout it is FAILED with reason TIMEOUT and
  `blocked_by` saying what held it (out of paper, printer stopped, server unreachable...).

Job titles travel to the print server and stay in its job history: they must never
hold personal data. `check_title` enforces a plain ASCII label such as
"social_insurance_record".

Status (devices.base): device ONLINE while the queue accepts and prints (also while it
is printing: the queue still takes jobs); HARDWARE_ERROR while the queue is stopped,
rejects jobs or the printer reports a blocking fault (jam, door open, toner empty); the
fault names the queue and what to check. OFFLINE when the print server cannot be
reached or the printer reports itself offline (the supervisor then reopens with
back-off). Media: OUT (media-empty, media-needed), LOW (media-low), JAMMED (media-jam),
PRESENT when the printer reports no paper problem; UNKNOWN while it cannot be asked.

Events: ``status_changed`` (devices.base) and ``job_changed`` (data: job_id, state,
reason, detail) for every change `wait` observes.
"""
from __future__ import annotations

import abc
import enum
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

from devices.base import Device, DeviceDisconnected, DeviceError

JOB_CHANGED = "job_changed"


class JobState(str, enum.Enum):
    QUEUED = "queued"
    PRINTING = "printing"
    DONE = "done"
    FAILED = "failed"


class JobReason(str, enum.Enum):
    """Why a job waits or failed: stable codes for the visit, the help desk and logs."""

    OUT_OF_PAPER = "out_of_paper"
    PAPER_JAM = "paper_jam"
    DOOR_OPEN = "door_open"
    TONER_EMPTY = "toner_empty"
    PRINTER_STOPPED = "printer_stopped"
    PRINTER_OFFLINE = "printer_offline"
    PRINTER_ERROR = "printer_error"
    HELD = "held"
    CANCELLED = "cancelled"
    UNREACHABLE = "unreachable"
    JOB_LOST = "job_lost"
    TIMEOUT = "timeout"


# short words for a technician's screen and logs; citizens get texts from config/texts.toml
REASON_TEXT: dict[JobReason, str] = {
    JobReason.OUT_OF_PAPER: "缺纸 / out of paper",
    JobReason.PAPER_JAM: "卡纸 / paper jam",
    JobReason.DOOR_OPEN: "机盖打开 / cover or door open",
    JobReason.TONER_EMPTY: "墨粉耗尽 / toner or ink empty",
    JobReason.PRINTER_STOPPED: "打印队列已停止 / print queue stopped",
    JobReason.PRINTER_OFFLINE: "打印机脱机 / printer offline",
    JobReason.PRINTER_ERROR: "打印出错 / the printer or print server gave up on the job",
    JobReason.HELD: "作业被挂起 / job held",
    JobReason.CANCELLED: "作业已取消 / job cancelled",
    JobReason.UNREACHABLE: "无法连接打印服务 / print server unreachable",
    JobReason.JOB_LOST: "作业丢失 / the print server no longer knows the job",
    JobReason.TIMEOUT: "打印超时 / not printed in time",
}


class PrinterRejecting(DeviceError):
    """The queue refuses new jobs (cupsreject, or a server-side policy): nothing was queued."""


class QueueNotFound(DeviceDisconnected):
    """The configured queue does not exist on the print server."""


class PrinterOffline(DeviceDisconnected):
    """The printer behind the queue reports itself offline (powered off, cable out)."""


class UnsafeJobTitle(ValueError):
    """A job title that could carry personal data: a programming error, never sent."""


@dataclass(frozen=True)
class PrintJob:
    """A submitted document; only ids and the (non-personal) title, nothing of the content."""

    job_id: int
    queue: str
    title: str
    submitted_at: float  # time.monotonic() at submission


@dataclass(frozen=True)
class JobStatus:
    job_id: int
    state: JobState
    reason: JobReason | None = None
    detail: str = ""  # for a technician: the print server's own message, what to check
    sheets: int = 0  # sheets out so far, as the server counts them (0 when it does not)
    blocked_by: JobReason | None = None  # with reason TIMEOUT: what held the job

    @property
    def finished(self) -> bool:
        return self.state in (JobState.DONE, JobState.FAILED)

    def as_dict(self) -> dict[str, Any]:
        return {
            "job_id": self.job_id,
            "state": self.state.value,
            "reason": self.reason.value if self.reason else None,
            "detail": self.detail,
            "sheets": self.sheets,
            "blocked_by": self.blocked_by.value if self.blocked_by else None,
        }

    def describe(self) -> str:
        """One line for logs and technicians."""
        text = f"job {self.job_id} {self.state.value}"
        if self.reason is not None:
            text += f" ({REASON_TEXT[self.reason]})"
        if self.blocked_by is not None:
            text += f", held by: {REASON_TEXT[self.blocked_by]}"
        return f"{text}: {self.detail}" if self.detail else text


_TITLE = re.compile(r"[A-Za-z0-9][A-Za-z0-9 ._-]{0,62}")
_DIGIT_RUN = re.compile(r"\d{6,}")


def check_title(title: str) -> str:
    """Accept only a plain label: ASCII letters, digits, space . _ -, no long digit runs.

    Hanzi names, ID numbers and phone numbers cannot pass, so nothing personal reaches
    the print server's job history or the output file names.
    """
    if not isinstance(title, str) or not _TITLE.fullmatch(title):
        raise UnsafeJobTitle(
            "a print job title must be 1-63 ASCII letters, digits, space, '.', '_' or '-' "
            "(it is kept in the print server's history: use the document kind, never a name)"
        )
    if _DIGIT_RUN.search(title):
        raise UnsafeJobTitle("a print job title must not hold a run of 6 or more digits (ID or phone numbers)")
    return title


OnChange = Callable[[JobStatus], None]


class A4Printer(Device):
    """An A4 printer behind a print server: queues PDFs and tracks each job to its end."""

    device_class = "a4_printer"

    poll_interval_s: float = 0.25  # how often wait() asks about a job
    job_timeout_s: float = 180.0  # wait()'s default deadline

    @abc.abstractmethod
    def submit(self, pdf: bytes, title: str) -> PrintJob:
        """Queue a PDF document; the title must pass check_title.

        Raises PrinterRejecting when the queue refuses jobs, QueueNotFound when it does
        not exist, DeviceDisconnected when the server cannot be reached, UnsafeJobTitle
        for a title that could hold personal data. Never writes the document to disk.
        """

    @abc.abstractmethod
    def job(self, job_id: int) -> JobStatus:
        """Where the job is now. DeviceDisconnected when the server cannot be reached."""

    @abc.abstractmethod
    def cancel(self, job_id: int) -> None:
        """Cancel a job that has not finished; finished jobs are left alone."""

    def wait(self, job: PrintJob | int, timeout_s: float | None = None,
             on_change: OnChange | None = None, cancel_on_timeout: bool = True) -> JobStatus:
        """Follow a job until DONE or FAILED; report every change to `on_change`.

        The server being unreachable for a while is reported (reason UNREACHABLE, state
        unchanged) and waited out: print servers keep their queue across restarts. When
        `timeout_s` (default `job_timeout_s`) passes first, the job is cancelled (unless
        `cancel_on_timeout` is False) and a FAILED status with reason TIMEOUT returned.
        Once the job has ended the driver may drop it from the server (`_forget`; the CUPS
        driver purges it, so the document leaves the spool at once): job() then says JOB_LOST.
        """
        job_id = job.job_id if isinstance(job, PrintJob) else int(job)
        limit = self.job_timeout_s if timeout_s is None else float(timeout_s)
        deadline = time.monotonic() + limit
        last: JobStatus | None = None
        blocked_by: JobReason | None = None
        while True:
            try:
                current = self.job(job_id)
            except DeviceDisconnected as exc:
                state = last.state if last is not None else JobState.QUEUED
                current = JobStatus(job_id, state, JobReason.UNREACHABLE, str(exc),
                                    last.sheets if last is not None else 0)
            if current.reason is not None and not current.finished:
                blocked_by = current.reason
            if last is None or (current.state, current.reason) != (last.state, last.reason):
                self._report(current, on_change)
            last = current
            if current.finished:
                self._forget(job_id)
                return current
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                break
            time.sleep(min(self.poll_interval_s, remaining))
        detail = f"job {job_id} still {last.state.value} after {limit:g} s"
        if blocked_by is not None:
            detail += f" ({REASON_TEXT[blocked_by]}: {last.detail})" if last.detail else f" ({REASON_TEXT[blocked_by]})"
        if cancel_on_timeout:
            try:
                self.cancel(job_id)
                detail += "; cancelled, so it cannot print after the citizen has gone"
            except DeviceError as exc:
                detail += f"; could NOT be cancelled ({exc}): remove it from the queue by hand"
        final = replace(last, state=JobState.FAILED, reason=JobReason.TIMEOUT, detail=detail, blocked_by=blocked_by)
        self._report(final, on_change)
        return final

    def _forget(self, job_id: int) -> None:
        """Called once wait() has seen the job end: drop what the server keeps of it (default: nothing)."""

    def _report(self, status: JobStatus, on_change: OnChange | None) -> None:
        self.emit(JOB_CHANGED, job_id=status.job_id, state=status.state.value,
                  reason=status.reason.value if status.reason else None, detail=status.detail)
        if on_change is not None:
            on_change(status)
