"""The real CUPS driver (pycups) against a private cupsd with a cups-pdf queue.

Every job goes through real IPP, CUPS' filters and the cups-pdf backend; printed PDFs are
read back with poppler and their QR codes decoded with zxing-cpp. One cupsd per module
(plus a short-lived one for the /etc fallback). Bounded waits only; no timing asserts.
"""
from __future__ import annotations

import datetime as dt
import threading
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from cups_harness import (
    certificate,
    ink_missing,
    page_image,
    pdf_info,
    pdf_pages,
    pdf_text,
    qr_texts,
    require_tools,
    running_emulator,
    wait_until,
)
from pydantic import ValidationError

from devices import registry
from devices.a4_printer import (
    JOB_CHANGED,
    JobReason,
    JobState,
    JobStatus,
    PrinterRejecting,
    QueueNotFound,
    UnsafeJobTitle,
    check_title,
)
from devices.a4_printer.driver import CupsPrinter, assess, job_status, parse_server
from devices.a4_printer.emulator import (
    SYSTEM_CUPS_ETC,
    CupsPdfEmulator,
    EmulatorError,
    free_port,
)
from devices.base import DeviceDisconnected, DeviceEvent, DeviceState, MediaState
from devices.supervisor import Supervisor
from kiosk.certificates import render_certificate
from kiosk.certificates import test_page as render_test_page

PRINTED_AT = dt.datetime(2026, 11, 27, 10, 5, tzinfo=dt.timezone(dt.timedelta(hours=8)))
ORDER = {JobState.QUEUED: 0, JobState.PRINTING: 1, JobState.DONE: 2, JobState.FAILED: 2}
SMALL_PDF: dict[str, bytes] = {}


def small_pdf() -> bytes:
    """A one-page certificate, rendered once per module."""
    if "pdf" not in SMALL_PDF:
        SMALL_PDF["pdf"] = render_certificate(certificate(3), "T-0001", PRINTED_AT)
    return SMALL_PDF["pdf"]


@pytest.fixture(scope="module")
def cups_pdf() -> Iterator[CupsPdfEmulator]:
    """One private cupsd for the whole module."""
    with running_emulator() as emulator:
        yield emulator


@pytest.fixture(autouse=True)
def healthy(cups_pdf: CupsPdfEmulator) -> Iterator[CupsPdfEmulator]:
    """Every test starts with cupsd running, the queue enabled and accepting, no faults."""
    if not cups_pdf.running:
        cups_pdf.replug()
    cups_pdf.clear_faults()
    cups_pdf.resume()
    yield cups_pdf
    cups_pdf.clear_faults()


@pytest.fixture
def printer(cups_pdf: CupsPdfEmulator) -> Iterator[CupsPrinter]:
    device = CupsPrinter("a4_printer", queue="KioskPDF", server=cups_pdf.address, job_timeout_s=60,
                         poll_interval_s=0.05)
    device.open()
    yield device
    device.close()


class Changes:
    """Collects wait()'s on_change reports; optionally acts once when a condition first holds."""

    def __init__(self, when=None, then=None) -> None:
        self.items: list[JobStatus] = []
        self.when, self.then = when, then
        self.fired = False
        self.status_then = None

    def __call__(self, status: JobStatus) -> None:
        self.items.append(status)
        if self.when is not None and not self.fired and self.when(status):
            self.fired = True
            if self.then is not None:
                self.then(status)

    def states(self) -> list[tuple[JobState, JobReason | None]]:
        return [(s.state, s.reason) for s in self.items]


# -- end to end ------------------------------------------------------------------------------------
def test_certificate_prints_through_cups_and_comes_out_whole(cups_pdf, printer, tmp_path: Path) -> None:
    source = render_certificate(certificate(40), "GZ-TH-0001", PRINTED_AT)
    pages = pdf_pages(source)
    assert pages == 2  # the test means a table that breaks over a page
    events: list[DeviceEvent] = []
    printer.subscribe(events.append)
    changes = Changes()

    job = printer.submit(source, "social_insurance_record")
    final = printer.wait(job, 60, on_change=changes)

    assert final.state is JobState.DONE and final.reason is None, final.describe()
    seen = [s.state for s in changes.items]
    assert seen[-1] is JobState.DONE
    assert [ORDER[s] for s in seen] == sorted(ORDER[s] for s in seen), seen  # never backwards
    assert [e.data["state"] for e in events if e.kind == JOB_CHANGED] == [s.value for s in seen]

    out = cups_pdf.printed_for(job.job_id)
    assert out is not None, f"no PDF for job {job.job_id} in {cups_pdf.output_dir}"
    info = pdf_info(out)
    assert int(info["Pages"]) == pages
    assert info["Page size"].startswith("595") and "842" in info["Page size"], info["Page size"]  # A4
    # What was sent holds the text; cups-pdf's Ghostscript pass keeps the look but not the text
    # layer of most font subsets, so the printed pages are compared with the sent ones by ink.
    first, second = pdf_text(source, 1), pdf_text(source, 2)
    for text in ("社会保险个人权益记录", "张三", "110101********1234", "SI-2026-8F3K-22QX", "GZ-TH-0001",
                 "第1页共2页", "Page1of2", "2026-11-2710:05"):
        assert text in first, text
    head = second.split("8000.00")[0]  # page 2 up to its first table row: the header row repeated
    assert all(name in head for name in ("年月", "缴费基数", "单位缴纳", "个人缴纳", "缴费单位")), head
    assert "第2页共2页" in second and "某市社会保险事业管理中心" in second
    for page in (1, 2):
        sent, printed = page_image(source, page, dpi=100), page_image(out, page, dpi=100)
        assert ink_missing(sent, printed) < 0.01 and ink_missing(printed, sent) < 0.01, page
    assert ink_missing(page_image(source, 1, dpi=100), page_image(out, 2, dpi=100)) > 0.3  # the check can fail
    image = page_image(out, 1, dpi=150)
    image.save(tmp_path / "printed-page1.png")
    assert qr_texts(image) == ["https://zwfw.example.gov.cn/verify?c=SI-2026-8F3K-22QX"]


def test_technicians_test_page_prints_unscaled(cups_pdf, printer) -> None:
    source = render_test_page("GZ-TH-0001", "天河区政务服务中心一楼大厅", PRINTED_AT)
    job = printer.submit(source, "a4_test_page")
    assert printer.wait(job, 60).state is JobState.DONE
    out = cups_pdf.printed_for(job.job_id)
    assert out is not None
    dpi = 150
    sent, printed = page_image(source, 1, dpi), page_image(out, 1, dpi)
    assert ink_missing(sent, printed) < 0.01 and ink_missing(printed, sent) < 0.01
    mm = dpi / 25.4
    middle = np.asarray(printed)[int(148.5 * mm)]
    dark = [x / mm for x in np.flatnonzero(middle < 128)]
    # the 100 mm square's sides where they were drawn: nothing scaled the page on its way
    assert any(abs(x - 55) < 0.5 for x in dark) and any(abs(x - 155) < 0.5 for x in dark), dark
    codes = qr_texts(printed)
    assert len(codes) == 1 and "terminal=GZ-TH-0001" in codes[0]


def test_job_title_never_carries_personal_data(printer) -> None:
    for title in ("张三", "110101199003071234", "phone 13800138000", "", "a/b", "x" * 64):
        with pytest.raises(UnsafeJobTitle):
            check_title(title)
        with pytest.raises(UnsafeJobTitle):
            printer.submit(small_pdf(), title)
    assert check_title("social_insurance_record") == "social_insurance_record"
    with pytest.raises(ValueError, match="PDF"):
        printer.submit(b"hello", "not_a_pdf")


# -- faults ----------------------------------------------------------------------------------------
def test_stopped_queue_holds_the_job_as_queued_then_prints(cups_pdf, printer) -> None:
    cups_pdf.stop_queue("维护中 maintenance: fuser replaced")
    printer.poll()
    status = printer.status()
    assert status.device is DeviceState.HARDWARE_ERROR
    assert "KioskPDF" in status.fault and "cupsenable KioskPDF" in status.fault and "maintenance" in status.fault

    job = printer.submit(small_pdf(), "social_insurance_record")
    now = printer.job(job.job_id)
    assert (now.state, now.reason) == (JobState.QUEUED, JobReason.PRINTER_STOPPED)
    assert "maintenance" in now.detail

    changes = Changes(when=lambda s: s.reason is JobReason.PRINTER_STOPPED, then=lambda s: cups_pdf.resume())
    final = printer.wait(job, 60, on_change=changes)
    assert changes.states()[0] == (JobState.QUEUED, JobReason.PRINTER_STOPPED)
    assert final.state is JobState.DONE, final.describe()
    assert cups_pdf.printed_for(job.job_id) is not None
    printer.poll()
    assert printer.status().device is DeviceState.ONLINE and printer.status().fault == ""


def test_rejecting_queue_refuses_submission_with_what_to_do(cups_pdf, printer) -> None:
    cups_pdf.reject("tray door broken")
    before = len(cups_pdf.printed())
    with pytest.raises(PrinterRejecting) as caught:
        printer.submit(small_pdf(), "social_insurance_record")
    text = str(caught.value)
    assert "KioskPDF" in text and "cupsaccept KioskPDF" in text and "tray door broken" in text
    assert printer.status().device is DeviceState.HARDWARE_ERROR
    cups_pdf.accept()
    printer.poll()
    assert printer.status().device is DeviceState.ONLINE
    assert len(cups_pdf.printed()) == before


def test_out_of_paper_holds_the_job_until_refilled(cups_pdf, printer) -> None:
    cups_pdf.paper_out()
    seen: dict[str, object] = {}

    def refill(status: JobStatus) -> None:
        seen["status"] = printer.status()
        seen["job"] = status
        cups_pdf.refill()

    changes = Changes(when=lambda s: s.reason is JobReason.OUT_OF_PAPER, then=refill)
    job = printer.submit(small_pdf(), "social_insurance_record")
    final = printer.wait(job, 60, on_change=changes)

    assert changes.fired, changes.states()
    assert seen["job"].state is JobState.PRINTING and "load A4 paper" in seen["job"].detail
    assert seen["status"].media is MediaState.OUT and "out of paper" in seen["status"].fault
    assert final.state is JobState.DONE, final.describe()
    printer.poll()
    assert printer.status().media is MediaState.PRESENT


def test_out_of_paper_left_by_a_cancelled_job_clears_with_the_next_page(cups_pdf, printer) -> None:
    """The terminal gives up on a job held for paper (the citizen gets the QR code instead); the
    technician refills and prints the test page: the printer is usable again. Found by the soak."""
    cups_pdf.paper_out()
    held = printer.wait(printer.submit(small_pdf(), "social_insurance_record"), 2)
    assert (held.state, held.blocked_by) == (JobState.FAILED, JobReason.OUT_OF_PAPER), held.describe()
    printer.poll()
    assert printer.status().media is MediaState.OUT
    cups_pdf.refill()
    assert printer.wait(printer.submit(small_pdf(), "test-page"), 60).state is JobState.DONE
    printer.poll()
    assert printer.status().media is MediaState.PRESENT, printer.status()


def test_paper_jam_is_a_hardware_error_until_cleared(cups_pdf, printer) -> None:
    cups_pdf.jam()
    seen = {}

    def clear(status: JobStatus) -> None:
        seen["status"] = printer.status()
        cups_pdf.unjam()

    changes = Changes(when=lambda s: s.reason is JobReason.PAPER_JAM, then=clear)
    final = printer.wait(printer.submit(small_pdf(), "social_insurance_record"), 60, on_change=changes)
    assert changes.fired, changes.states()
    assert seen["status"].device is DeviceState.HARDWARE_ERROR and seen["status"].media is MediaState.JAMMED
    assert "jammed sheet" in seen["status"].fault
    assert final.state is JobState.DONE, final.describe()


def test_paper_low_is_reported_and_printing_goes_on(cups_pdf, printer) -> None:
    cups_pdf.paper_low()
    final = printer.wait(printer.submit(small_pdf(), "social_insurance_record"), 60)
    assert final.state is JobState.DONE, final.describe()
    printer.poll()
    status = printer.status()
    assert (status.device, status.media) == (DeviceState.ONLINE, MediaState.LOW)
    assert "paper low" in status.fault
    cups_pdf.refill()
    assert printer.wait(printer.submit(small_pdf(), "social_insurance_record"), 60).state is JobState.DONE
    printer.poll()
    assert printer.status().media is MediaState.PRESENT


def test_job_failing_in_the_printer_is_failed_with_the_reason(cups_pdf, printer) -> None:
    cups_pdf.fail_next_job("fuser error 50.1")
    job = printer.submit(small_pdf(), "social_insurance_record")
    final = printer.wait(job, 60)
    assert (final.state, final.reason) == (JobState.FAILED, JobReason.PRINTER_ERROR), final.describe()
    assert "fuser error 50.1" in final.detail, final.describe()
    assert cups_pdf.printed_for(job.job_id) is None


def test_broken_document_fails_instead_of_waiting(cups_pdf, printer) -> None:
    job = printer.submit(b"%PDF-1.4\nnot really a PDF\n", "broken_document")
    final = printer.wait(job, 60)
    assert (final.state, final.reason) == (JobState.FAILED, JobReason.PRINTER_ERROR), final.describe()
    assert "error" in final.detail
    # gone from the server too, so it can never be restarted and print unattended
    assert printer.job(job.job_id).reason is JobReason.JOB_LOST


def test_timeout_cancels_the_job_and_says_what_held_it(cups_pdf, printer) -> None:
    cups_pdf.stop_queue("waiting for a technician")
    job = printer.submit(small_pdf(), "social_insurance_record")
    changes = Changes()
    final = printer.wait(job, 0.5, on_change=changes)
    assert (final.state, final.reason, final.blocked_by) == (JobState.FAILED, JobReason.TIMEOUT,
                                                            JobReason.PRINTER_STOPPED), final.describe()
    assert "cancelled" in final.detail and "waiting for a technician" in final.detail
    assert changes.items[-1] == final
    after = printer.job(job.job_id)
    assert (after.state, after.reason) == (JobState.FAILED, JobReason.JOB_LOST)  # cancelled and purged
    cups_pdf.resume()  # the queue runs again: a later job prints, the cancelled one never does
    later = printer.submit(small_pdf(), "social_insurance_record")
    assert printer.wait(later, 60).state is JobState.DONE
    assert cups_pdf.printed_for(later.job_id) is not None and cups_pdf.printed_for(job.job_id) is None


def test_cupsd_gone_is_a_disconnect_and_the_supervisor_reconnects(cups_pdf, printer) -> None:
    supervisor = Supervisor([printer], backoff_min=0.05, backoff_max=0.2)
    supervisor.round()
    assert printer.status().device is DeviceState.ONLINE

    cups_pdf.unplug()
    with pytest.raises(DeviceDisconnected) as caught:
        printer.poll()
    assert cups_pdf.address in str(caught.value) and "cupsd" in str(caught.value)
    supervisor.round()
    assert printer.status().device is DeviceState.OFFLINE
    assert printer.status().media is MediaState.UNKNOWN

    cups_pdf.replug()
    wait_until(lambda: (supervisor.round(), printer.status().device is DeviceState.ONLINE)[1])
    assert printer.wait(printer.submit(small_pdf(), "social_insurance_record"), 60).state is JobState.DONE


def test_wait_rides_out_a_cupsd_restart(cups_pdf, printer) -> None:
    cups_pdf.stop_queue("held for the restart test")
    job = printer.submit(small_pdf(), "social_insurance_record")
    changes = Changes()
    result: dict[str, JobStatus] = {}
    thread = threading.Thread(target=lambda: result.setdefault("final", printer.wait(job, 60, on_change=changes)))
    thread.start()
    wait_until(lambda: changes.items)
    cups_pdf.unplug()
    wait_until(lambda: any(s.reason is JobReason.UNREACHABLE for s in changes.items))
    cups_pdf.replug()  # the job is still in cupsd's spool
    cups_pdf.resume()
    thread.join(60)
    assert result["final"].state is JobState.DONE, result["final"].describe()
    assert JobReason.UNREACHABLE in [s.reason for s in changes.items]
    assert cups_pdf.printed_for(job.job_id) is not None


def test_printers_on_different_servers_do_not_interfere(cups_pdf, printer) -> None:
    dead = CupsPrinter("other_a4", queue="KioskPDF", server=f"127.0.0.1:{free_port()}", connect_timeout_s=1)
    errors: list[BaseException] = []

    def hammer() -> None:
        for _ in range(20):
            try:
                dead.poll()
            except DeviceDisconnected as exc:
                errors.append(exc)

    thread = threading.Thread(target=hammer)
    thread.start()
    jobs = []
    # the system's default server: none runs here, or it has no such queue; either way not ours
    default = CupsPrinter("system_a4", queue="KioskNoSuchQueue", connect_timeout_s=1)
    for other in (dead, default):
        with pytest.raises(DeviceDisconnected):
            other.poll()  # same thread: leaves libcups' globals pointed at the other server
        jobs.append(printer.submit(small_pdf(), "social_insurance_record"))
    thread.join(30)
    assert len(errors) == 20 and all(dead.params.server in str(e) for e in errors)
    for job in jobs:
        assert printer.wait(job, 60).state is JobState.DONE
        assert cups_pdf.printed_for(job.job_id) is not None


def test_missing_queue_is_reported_with_the_fix(cups_pdf) -> None:
    device = CupsPrinter("a4_printer", queue="NoSuchQueue", server=cups_pdf.address)
    with pytest.raises(QueueNotFound) as caught:
        device.open()
    assert "NoSuchQueue" in str(caught.value) and "lpstat -p" in str(caught.value)
    assert device.status().device is DeviceState.OFFLINE


def test_self_test_names_each_check(cups_pdf, printer) -> None:
    results = {r.name: r for r in printer.self_test()}
    assert all(r.passed for r in results.values()), [r.as_dict() for r in results.values()]
    assert "cups-pdf:/" in results["queue exists"].detail
    cups_pdf.stop_queue("self-test check")
    results = {r.name: r for r in printer.self_test()}
    assert not results["queue enabled"].passed and "cupsenable KioskPDF" in results["queue enabled"].detail
    assert results["queue accepts jobs"].passed


def test_driver_parameters_are_checked() -> None:
    with pytest.raises(ValidationError):
        CupsPrinter.Params(queue="KioskPDF", colour="yes")  # what the config loader checks
    with pytest.raises(ValidationError):
        CupsPrinter("a4", queue="KioskPDF", server="127.0.0.1:99999")
    with pytest.raises(ValidationError):
        CupsPrinter("a4", queue="bad queue")
    assert parse_server("") is None
    assert parse_server("print.example:8631") == ("print.example", 8631)
    assert parse_server("[::1]:631") == ("::1", 631)
    assert parse_server("/run/cups/cups.sock") == ("/run/cups/cups.sock", 0)
    assert parse_server("printhost") == ("printhost", 631)


# -- the status and job mappings, attribute by attribute ------------------------------------------------
@pytest.mark.parametrize("reasons, device, media, reason", [
    (["none"], DeviceState.ONLINE, MediaState.PRESENT, None),
    (["media-empty-error"], DeviceState.ONLINE, MediaState.OUT, JobReason.OUT_OF_PAPER),
    (["media-needed"], DeviceState.ONLINE, MediaState.OUT, JobReason.OUT_OF_PAPER),
    (["media-low-report"], DeviceState.ONLINE, MediaState.LOW, None),
    (["media-jam-error"], DeviceState.HARDWARE_ERROR, MediaState.JAMMED, JobReason.PAPER_JAM),
    (["media-low-report", "media-jam-error"], DeviceState.HARDWARE_ERROR, MediaState.JAMMED, JobReason.PAPER_JAM),
    (["cover-open-error"], DeviceState.HARDWARE_ERROR, MediaState.PRESENT, JobReason.DOOR_OPEN),
    (["toner-empty-error"], DeviceState.HARDWARE_ERROR, MediaState.PRESENT, JobReason.TONER_EMPTY),
    (["toner-low-report"], DeviceState.ONLINE, MediaState.PRESENT, None),
    (["fuser-over-temp-error"], DeviceState.HARDWARE_ERROR, MediaState.PRESENT, JobReason.PRINTER_ERROR),
])
def test_printer_state_reasons_map_to_status(reasons, device, media, reason) -> None:
    result = assess({"printer-state": 3, "printer-state-reasons": reasons, "printer-is-accepting-jobs": True},
                    "A4 printer x", "Q")
    assert (result.device, result.media, result.reason) == (device, media, reason)
    assert bool(result.fault) == (reasons != ["none"])


def test_offline_and_stopped_queue_mapping() -> None:
    offline = assess({"printer-state": 3, "printer-state-reasons": ["offline-report"]}, "A4 printer x", "Q")
    assert offline.offline and offline.reason is JobReason.PRINTER_OFFLINE and "cable" in offline.fault
    stopped = assess({"printer-state": 5, "printer-state-reasons": ["paused"],
                      "printer-state-message": "door"}, "A4 printer x", "Q")
    assert stopped.stopped and stopped.device is DeviceState.HARDWARE_ERROR
    assert stopped.reason is JobReason.PRINTER_STOPPED and "cupsenable Q" in stopped.fault


@pytest.mark.parametrize("attrs, state, reason", [
    ({"job-state": 3}, JobState.QUEUED, None),
    ({"job-state": 4, "job-state-reasons": "job-hold-until-specified"}, JobState.QUEUED, JobReason.HELD),
    ({"job-state": 5}, JobState.PRINTING, None),
    ({"job-state": 7}, JobState.FAILED, JobReason.CANCELLED),
    ({"job-state": 8, "job-printer-state-message": "boom"}, JobState.FAILED, JobReason.PRINTER_ERROR),
    ({"job-state": 9}, JobState.DONE, None),
    ({"job-state": 9, "job-state-reasons": "job-completed-with-errors"}, JobState.FAILED, JobReason.PRINTER_ERROR),
    ({"job-state": 6, "job-state-reasons": "job-completed-with-errors"}, JobState.FAILED, JobReason.PRINTER_ERROR),
    ({"job-state": 6, "job-state-reasons": "none"}, JobState.PRINTING, JobReason.PRINTER_STOPPED),
])
def test_job_states_map_to_kiosk_states(attrs, state, reason) -> None:
    from devices.a4_printer.driver import Assessment

    status = job_status(7, attrs, Assessment())
    assert (status.state, status.reason) == (state, reason)


# -- the emulator itself ----------------------------------------------------------------------------------
def test_emulator_console_and_terminal_wiring(cups_pdf) -> None:
    assert registry.emulator_class("a4_printer", "cups") is CupsPdfEmulator
    assert registry.driver_class("a4_printer", "cups") is CupsPrinter
    params: dict[str, object] = {}
    for key, value in CupsPdfEmulator.DRIVER_DEFAULTS.items():
        params.setdefault(key, value)
    params[CupsPdfEmulator.ADDRESS_PARAM] = cups_pdf.address  # what kiosk/terminal.py does with start()
    device = registry.driver_class("a4_printer", "cups")("a4_printer", **params)
    device.open()
    assert device.status().device is DeviceState.ONLINE
    device.close()

    assert "paper out|low|ok" in cups_pdf.command("help")
    assert "stopped" in cups_pdf.command("stop 维护 maintenance")
    assert "disabled" in cups_pdf.command("status")
    assert "accepting" in cups_pdf.command("resume")
    assert cups_pdf.command("paper out") == "tray empty"
    assert cups_pdf.command("paper ok") == "tray refilled"
    assert "unknown command" in cups_pdf.command("paper sideways")
    assert "unknown command" in cups_pdf.command("bogus")
    assert cups_pdf.command("") == ""


def test_etc_fallback_isolation_prints_and_cleans_up(tmp_path: Path) -> None:
    require_tools()
    emulator = CupsPdfEmulator(isolation="etc")
    try:
        address = emulator.start()
        confs = sorted(SYSTEM_CUPS_ETC.glob("cups-pdf-kiosk-emulator-*.conf"))
        assert emulator._etc_conf in confs and str(emulator.output_dir) in emulator._etc_conf.read_text()
        device = CupsPrinter("a4_printer", queue="KioskPDF", server=address, poll_interval_s=0.05)
        device.open()
        job = device.submit(small_pdf(), "social_insurance_record")
        assert device.wait(job, 60).state is JobState.DONE
        out = emulator.printed_for(job.job_id)
        assert out is not None and out.parent == emulator.output_dir
        device.close()
        conf = emulator._etc_conf
    finally:
        emulator.stop()
    assert not conf.exists()
    assert not emulator.running


def test_emulator_refuses_a_directory_cupsd_filters_cannot_reach(tmp_path: Path) -> None:
    tmp_path.chmod(0o700)  # as pytest makes them: user lp (CUPS filters) cannot enter
    emulator = CupsPdfEmulator(str(tmp_path / "a4"))
    with pytest.raises(EmulatorError, match=r"user lp.*chmod o\+x"):
        emulator.start()
    assert not emulator.running
