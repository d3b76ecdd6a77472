"""What the citizen takes away: the acceptance receipt, or the certificate they came for.

The finish step shows the receipt number at once; printing runs behind it on its own
thread and reports each stage to the visit (`Visit.handout_changed`). When paper fails —
out, jammed, a printer that stopped answering — the citizen is offered the same thing
another way, never left empty-handed: the progress (or verification) page as a QR code on
the screen, and an SMS through the platform to the phone number the state holds.

Only what the paper needs leaves the visit: the receipt carries the service, the number
and a masked name; a certificate (which does hold personal data) is fetched, printed and
dropped, and is not printed at all once the citizen has gone (the visit was wiped).
"""
from __future__ import annotations

import datetime
import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from config.schema import KioskConfig
from devices.base import Device, DeviceError, DeviceState, MediaState
from kiosk.catalogue import Service
from kiosk.govclient import PlatformError, new_idempotency_key
from kiosk.privacy import mask_name
from kiosk.visit import Handout, Step, View, Visit

log = logging.getLogger(__name__)

# media states in which a printer cannot be trusted with a citizen's paper
_NO_PAPER = (MediaState.OUT, MediaState.JAMMED)
# why an A4 job may be held that only a person on site can fix: give up at once
_GIVE_UP = {"out_of_paper", "paper_jam", "door_open", "toner_empty", "printer_stopped"}


@dataclass
class _Job:
    """One visit's handout: copied out of the session, so the wipe does not race the printer."""

    visit_id: str
    receipt_number: str
    delivered: bool
    service: Service
    language: str
    masked_name: str
    token: str | None  # the citizen token, only while the visit lasts (certificate, SMS)
    promised: list[str] = field(default_factory=list)
    qr: str | None = None


def usable(device: Device | None) -> bool:
    """Online with paper that is not out or jammed (low still prints)."""
    if device is None:
        return False
    status = device.status()
    return status.device is DeviceState.ONLINE and status.media not in _NO_PAPER


def public_url(cfg: KioskConfig) -> str:
    """Where citizens' phones reach the platform's public pages (progress, verification)."""
    if cfg.platform.public_url:
        return cfg.platform.public_url.rstrip("/")
    parts = urlsplit(cfg.platform.url)
    return f"{parts.scheme}://{parts.netloc}" if parts.netloc else ""


class HandoutDesk:
    """Prints what a finished visit hands out, and offers the other ways when paper fails."""

    def __init__(self, visit: Visit, cfg: KioskConfig, device: Callable[[str], Device | None],
                 link: Any = None, *, now: Callable[[], datetime.datetime] | None = None) -> None:
        self.visit = visit
        self.cfg = cfg
        self.device = device
        self.link = link
        self.now = now or (lambda: datetime.datetime.now().astimezone())
        self._job: _Job | None = None
        self._lock = threading.Lock()
        self.threads: list[threading.Thread] = []  # tests join them

    # -- the visit's view -> work -------------------------------------------------------------
    def on_view(self, view: View) -> None:
        if view.step is Step.FINISH and view.reason in ("submitted", "queued") and view.receipt:
            self.begin(view.receipt, delivered=view.reason == "submitted")
        elif view.step is Step.FINISH and view.reason == "sms":
            self._spawn(self._send_sms, "sms")
        elif view.step is Step.ATTRACT:
            with self._lock:
                self._job = None  # the citizen has gone: their token with them

    def begin(self, receipt_number: str, delivered: bool) -> None:
        session = self.visit.session
        if session.service_id is None:
            return
        service = self.visit.catalogue.get(session.service_id)
        token = session.citizen_token.token if session.citizen_token is not None else None
        # the materials promised for later (告知承诺), exactly as the submission declared them
        provided = self.link.materials_for(session, service) if self.link is not None else []
        promised = {m["id"] for m in provided if m.get("provided") == "promise"}
        job = _Job(session.visit_id, receipt_number, delivered, service, self.visit.language,
                   mask_name(getattr(session.identity, "name", "") or ""), token,
                   [m.title.get(self.visit.language) or m.title.get("zh-CN", m.id)
                    for m in service.materials if m.id in promised])
        with self._lock:
            self._job = job
        target = self._certificate if service.kind == "certificate" else self._receipt
        self._spawn(lambda: target(job), service.kind)

    def _spawn(self, target: Callable[[], None], what: str) -> None:
        thread = threading.Thread(target=self._guarded(target), name=f"handout-{what}", daemon=True)
        self.threads = [t for t in self.threads if t.is_alive()] + [thread]
        thread.start()

    @staticmethod
    def _guarded(target: Callable[[], None]) -> Callable[[], None]:
        def run() -> None:
            try:
                target()
            except Exception:  # a print worker must never take the terminal down
                log.exception("handout worker failed")
        return run

    def _tell(self, job: _Job, key: str, *, qr: str | None = None, sms: str = "", **values: str) -> None:
        self.visit.handout_changed(job.visit_id, Handout(key, dict(values), qr, sms))

    def _sms_offer(self, job: _Job) -> str:
        return "offer" if job.token is not None and job.delivered and self.link is not None else ""

    # -- the acceptance receipt --------------------------------------------------------------------
    def receipt_values(self, job: _Job) -> dict[str, Any]:
        base = public_url(self.cfg)
        return {
            "terminal_id": self.cfg.terminal.id,
            "location": self.cfg.terminal.location,
            "printed_at": self.now().strftime("%Y-%m-%d %H:%M"),
            "accepted_at": self.now().strftime("%Y-%m-%d %H:%M"),
            "receipt_number": job.receipt_number,
            "service_title": job.service.title_in(job.language),
            "applicant": job.masked_name,
            "departments": [],
            "commitments": job.promised,
            "progress_url": f"{base}/progress/{job.receipt_number}" if base else "",
            "queued": not job.delivered,
        }

    def _receipt(self, job: _Job) -> None:
        from kiosk import receipts

        values = self.receipt_values(job)
        job.qr = values["progress_url"] or None
        printer = self.device(self.cfg.handout.receipt_printer)
        if not usable(printer):
            reason = "handout.no_printer" if printer is None else _paper_key(printer)
            log.warning("receipt %s not printed: %s", job.receipt_number,
                        "no receipt printer configured" if printer is None else printer.status().fault or reason)
            self._tell(job, reason if job.qr else "handout.note_number", qr=job.qr, sms=self._sms_offer(job),
                       receipt=job.receipt_number)
            return
        self._tell(job, "handout.printing_receipt")
        try:
            document = receipts.build("acceptance", values, job.language)
            printer.print_document(document)  # type: ignore[union-attr]
        except DeviceError as exc:
            log.warning("receipt %s not printed: %s", job.receipt_number, exc)
            self._tell(job, _paper_key(printer, exc) if job.qr else "handout.note_number", qr=job.qr,
                       sms=self._sms_offer(job), receipt=job.receipt_number)
            return
        log.info("receipt %s printed", job.receipt_number)
        self._tell(job, "handout.receipt_printed")

    # -- a certificate on the A4 printer --------------------------------------------------------------
    def _certificate(self, job: _Job) -> None:
        from kiosk import certificates

        printer = self.device(self.cfg.handout.a4_printer)
        if not job.delivered or job.token is None or self.link is None:
            # the platform issues a certificate at once or not at all: while the application
            # waits in the outbox, the citizen leaves with its acceptance receipt instead
            self._receipt(job)
            return
        self._tell(job, "handout.certificate_fetching")
        try:
            data = self.link.quick.certificate(job.receipt_number, job.token)
        except PlatformError as exc:
            log.warning("certificate for %s not issued: %s", job.receipt_number, exc)
            self._tell(job, "handout.certificate_unavailable", receipt=job.receipt_number)
            return
        verify = str(data.get("verify_url") or "") or None
        if not self._still_here(job):
            log.info("certificate for %s not printed: the citizen has left", job.receipt_number)
            return
        if not usable(printer):
            self._tell(job, "handout.certificate_no_printer", qr=verify, sms=self._sms_offer(job),
                       receipt=job.receipt_number)
            return
        try:
            pdf = certificates.render_certificate(data, terminal_id=self.cfg.terminal.id, printed_at=self.now())
            title = certificates.job_title(data)  # the document's kind: nothing personal in the print history
            del data
            handle = printer.submit(pdf, title=title)  # type: ignore[union-attr]
            del pdf
            self._tell(job, "handout.certificate_queued")
            final = printer.wait(handle,  # type: ignore[union-attr]
                                 on_change=lambda st: self._job_progress(job, st, printer))
        except certificates.CertificateError as exc:
            log.error("certificate for %s cannot be rendered: %s", job.receipt_number, exc)
            self._tell(job, "handout.certificate_failed", qr=verify, sms=self._sms_offer(job),
                       receipt=job.receipt_number)
            return
        except DeviceError as exc:
            log.warning("certificate for %s not printed: %s", job.receipt_number, exc)
            self._tell(job, "handout.certificate_failed", qr=verify, sms=self._sms_offer(job),
                       receipt=job.receipt_number)
            return
        if _state(final) == "done":
            log.info("certificate for %s printed", job.receipt_number)
            self._tell(job, "handout.certificate_printed")
        else:
            log.warning("certificate for %s not printed: job %s (%s)", job.receipt_number, _state(final),
                        getattr(final, "reason", ""))
            self._tell(job, "handout.certificate_failed", qr=verify, sms=self._sms_offer(job),
                       receipt=job.receipt_number)

    def _job_progress(self, job: _Job, status: Any, printer: Any) -> None:
        state = _state(status)
        reason = _state(status.reason) if getattr(status, "reason", None) is not None else ""
        if state in ("queued", "printing") and reason in _GIVE_UP:
            # a person has to come (paper, jam, door): the citizen should not wait for that
            log.warning("certificate job %s held (%s): cancelled, another way offered", status.job_id, reason)
            try:
                printer.cancel(status.job_id)
            except DeviceError as exc:
                log.error("certificate job %s could not be cancelled: %s", status.job_id, exc)
        elif state in ("queued", "printing"):
            self._tell(job, f"handout.certificate_{state}")

    def _still_here(self, job: _Job) -> bool:
        return self.visit.step is Step.FINISH and self.visit.session.visit_id == job.visit_id

    # -- SMS through the platform ---------------------------------------------------------------------
    def _send_sms(self) -> None:
        with self._lock:
            job = self._job
        if job is None or job.token is None or self.link is None:
            return
        view = self.visit.view()
        base = view.handout
        if base is None:
            return
        try:
            answer = self.link.quick.send_sms(job.receipt_number, job.token, new_idempotency_key())
        except PlatformError as exc:
            log.warning("SMS for %s not sent: %s", job.receipt_number, exc)
            self.visit.handout_changed(job.visit_id, Handout(base.message_key, base.values, base.qr, "failed"))
            return
        values = dict(base.values, sent_to=str(answer.get("sent_to", "")))
        self.visit.handout_changed(job.visit_id, Handout("handout.sms_sent", values, base.qr, "sent"))


def _state(status: Any) -> str:
    state = getattr(status, "state", status)
    return str(getattr(state, "value", state))


def _paper_key(printer: Device | None, exc: Exception | None = None) -> str:
    """The citizen-facing reason a receipt did not come out."""
    if printer is None:
        return "handout.no_printer"
    name = type(exc).__name__ if exc is not None else ""
    media = printer.status().media
    if name == "PaperOut" or media is MediaState.OUT:
        return "handout.paper_out"
    if name == "PrinterJammed" or media is MediaState.JAMMED:
        return "handout.paper_jam"
    return "handout.printer_fault"
