"""The fault matrix for devices and system services (issue 11): a running terminal, one fault at a
time, in the middle of a visit.

One terminal for the whole module (tests/faults/fault_rig.py): every device on its emulator, the
reference platform as its own process, the fleet agent on a private mosquitto and a help-desk
console recording what reaches the help desk. Each test breaks one thing and checks that

- the visit degrades as designed (a calm notice, the other card reader, another way to get the
  paper, or a wait), and nothing crashes;
- the device comes back by itself (the supervisor reopens it) and the visit finishes, or the
  next one works;
- the help desk got the alert, raised and then cleared;
- the terminal logged no error with a traceback (checked after every test), and the process
  holds no more threads or file descriptors at the end of the matrix than before it.

Every device class the terminal has can be unplugged: the serial ones (ID card, receipt printer,
QR scanner) lose their pseudo-terminal, the cameras (face, document) their stream, the smart-card
reader leaves pcscd, and the A4 printer's "cable" is its print server (cupsd stops).
"""
from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import pytest
from fault_rig import (
    ALL_DEVICES,
    FaultRig,
    Resources,
    enrol_at,
    running_broker,
    running_platform,
    running_rig,
)
from waiting import wait_for

from devices.base import DeviceState
from govapi.appointment_codes import make_appointment_code
from kiosk.visit import InvalidTransition, Step

CARDS = {"idcard": "resident", "smartcard": "zhang-san"}  # both 张三, whom the platform knows
CERTIFICATE = "social-insurance-record"  # printed on the A4 printer at once
APPLICATION = "social-security-card"  # a bundle: its acceptance receipt is printed; its photo is scanned
UNKNOWN_APPOINTMENT = make_appointment_code("261127999999")  # well-formed, booked by nobody
# what the terminal may log at ERROR with a traceback while these faults happen: nothing
EXPECTED_ERRORS: tuple[str, ...] = ()
# The last test counts this process's threads and descriptors: in a pytest-xdist worker the
# modules run before it may leave their own in the same process (camera emulator streams changed
# under it twice). scripts/test.sh runs this module alone (SOLO), first in its process.


# -- the bench ------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def rig(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FaultRig]:
    folder = tmp_path_factory.mktemp("device-faults")
    with running_platform(folder / "platform") as server, running_broker(folder) as broker:
        enrol_at(server, folder / "kiosk" / "data")
        with running_rig(folder / "kiosk", broker, face=True, platform_url=server.url) as rig:
            warm_up(rig)
            unexpected = rig.log.unexpected(0, EXPECTED_ERRORS)
            assert not unexpected, "errors with a traceback while warming up:\n" + "\n".join(unexpected)
            rig.baseline = settled()
            yield rig


def warm_up(rig: FaultRig) -> None:
    """Everything the matrix uses, once, before the threads and descriptors are counted: the
    face check, a scan, both printers, the check-in, and every device pulled and put back."""
    rig.reset()
    rig.visit.face_required = True
    identify(rig, "idcard")
    rig.visit.face_required = False
    application_to_review(rig)
    submit_and_leave(rig, "idcard", "handout.receipt_printed")
    identify(rig, "smartcard")
    certificate_to_review(rig)
    submit_and_leave(rig, "smartcard", "handout.certificate_printed")
    check_in_unknown(rig)
    rig.reset()
    pull_every_device(rig)


def pull_every_device(rig: FaultRig) -> None:
    """Each device unplugged and plugged back in, pcscd restarted: the help desk sees each."""
    for name in ALL_DEVICES:
        mark = rig.console.mark()
        rig.unplug(name)
        rig.console.wait_alert(f"{name}.device_offline", "raised", after=mark)
        rig.replug(name)
        rig.console.wait_alert(f"{name}.device_offline", "cleared", after=mark)
    restart_pcscd(rig)
    rig.reset()


def settled() -> Resources:
    """The process's threads and descriptors once the short-lived ones (print, face check,
    a camera's HTTP request) have ended: the lowest of a few looks."""
    looks = []
    for _ in range(5):
        looks.append(Resources.now())
        time.sleep(0.2)  # spacing between looks, not a timing assertion
    return min(looks, key=lambda r: (r.threads, r.fds))


_faults_run: list[str] = []  # the tests that used the terminal so far (this module, this run)


@pytest.fixture
def fresh(rig: FaultRig, request: pytest.FixtureRequest) -> Iterator[FaultRig]:
    """A terminal at rest (no visit, every device online, no alert at the help desk); after
    the test: nothing of the terminal crashed and it logged no unexpected error."""
    rig.reset()
    rig.visit.face_required = False
    mark = rig.log.mark()
    _faults_run.append(request.node.name)
    yield rig
    assert not rig.alive(), f"crashed: {rig.alive()}"
    rig.reset()
    unexpected = rig.log.unexpected(mark, EXPECTED_ERRORS)
    assert not unexpected, "the terminal logged errors with a traceback:\n" + "\n".join(unexpected)


# -- a visit, step by step --------------------------------------------------------------------------------------
def place(rig: FaultRig, reader: str) -> None:
    rig.emulator(reader).place_card(CARDS[reader])


def identify(rig: FaultRig, reader: str) -> None:
    """A citizen starts a visit with their card (and face, when required); their page is loaded."""
    rig.visit.start()
    rig.wait_step(Step.IDENTIFY)
    place(rig, reader)
    rig.wait_step(Step.HOME)
    wait_for(lambda: (home := rig.visit.view().home) is not None and home.state == "ready",
             "the citizen's page loaded from the platform")


def certificate_to_review(rig: FaultRig) -> None:
    """From the citizen's page or the service list to the review of a certificate request."""
    visit = rig.visit
    if visit.step is Step.HOME:
        visit.browse()
    visit.choose(CERTIFICATE)
    visit.next()  # the notice accepted
    visit.correct("record_type", "contribution_proof")
    visit.correct("period", "12m")
    visit.next()
    assert {m.id: m.provided for m in visit.view().materials} == {"id_card": "e_licence"}
    visit.next()
    assert visit.step is Step.REVIEW


def application_to_materials(rig: FaultRig) -> None:
    visit = rig.visit
    if visit.step is Step.HOME:
        visit.browse()
    visit.choose(APPLICATION)
    visit.next()
    visit.correct("apply_type", "first")
    visit.next()
    assert visit.step is Step.MATERIALS


def scan_photo(rig: FaultRig) -> None:
    rig.emulator("scanner").place("form")
    rig.visit.scan("photo")
    wait_for(lambda: "photo" in rig.visit.view().scanned, "the photo page scanned and attached")


def application_to_review(rig: FaultRig) -> None:
    application_to_materials(rig)
    scan_photo(rig)
    rig.visit.next()
    assert rig.visit.step is Step.REVIEW


def submit_and_leave(rig: FaultRig, reader: str, handout: str) -> str:
    """Confirm, see the paper come out (`handout`), take the card, skip the rating; the receipt number."""
    visit = rig.visit
    visit.confirm()
    view = rig.wait_step(Step.FINISH)
    assert view.receipt and view.receipt.startswith("SQ"), f"not accepted by the platform: {view.receipt}"
    wait_for(lambda: (h := visit.view().handout) is not None and h.message_key == handout,
             f"{handout} (the handout is {visit.view().handout})", 60)
    rig.emulator(reader).remove_card()
    rig.wait_step(Step.RATING)  # the card taken back was seen
    visit.finish()
    rig.wait_step(Step.ATTRACT)
    return view.receipt


def check_in_unknown(rig: FaultRig) -> None:
    """An appointment code held up on the attract screen reaches the platform (which knows no
    such booking, and says so calmly)."""
    rig.wait_step(Step.ATTRACT)
    rig.emulator("qr_scanner").scan(UNKNOWN_APPOINTMENT)
    wait_for(lambda: (h := rig.visit.view().handout) is not None and h.message_key == "ticket.unknown",
             f"the check-in answered (the screen is {rig.visit.step.value}, {rig.visit.view().handout})")
    rig.visit.wipe("test")


def restart_pcscd(rig: FaultRig) -> None:
    mark = rig.console.mark()
    rig.emulator("smartcard").restart_service()
    rig.console.wait_alert("smartcard.device_offline", "raised", after=mark)
    rig.console.wait_alert("smartcard.device_offline", "cleared", after=mark)


# -- every device unplugged mid-visit ---------------------------------------------------------------------------
@dataclass(frozen=True)
class Case:
    """One device pulled at one moment of a visit: how the visit gets there, what the citizen
    sees while the device is away, and how the visit (or the next one) ends once it is back."""

    device: str
    moment: str
    prepare: Callable[[FaultRig], None]
    degraded: Callable[[FaultRig], None]
    finish: Callable[[FaultRig], None]

    def __str__(self) -> str:
        return f"{self.device}-{self.moment}"


def _identify_prepare(rig: FaultRig) -> None:
    rig.visit.start()
    rig.wait_step(Step.IDENTIFY)


def _idcard_away_at_identify(rig: FaultRig) -> None:
    wait_for(lambda: rig.visit.card_kinds == {"smartcard"}, "identify asks for the social security card only")
    rig.wait_step(Step.IDENTIFY, message="identify.idcard_offline")


def _smartcard_away_at_identify(rig: FaultRig) -> None:
    wait_for(lambda: rig.visit.card_kinds == {"idcard"}, "identify asks for the ID card only")
    assert rig.visit.step is Step.IDENTIFY and rig.visit.view().message_key is None  # the ID card still works


def _identify_with(reader: str) -> Callable[[FaultRig], None]:
    def finish(rig: FaultRig) -> None:
        wait_for(lambda: rig.visit.card_kinds == {"idcard", "smartcard"}, "identify asks for either card again")
        place(rig, reader)
        rig.wait_step(Step.HOME)
        wait_for(lambda: rig.visit.view().home is not None and rig.visit.view().home.state == "ready",
                 "the citizen's page loaded")
        certificate_to_review(rig)
        submit_and_leave(rig, reader, "handout.certificate_printed")

    return finish


def _card_in_prepare(reader: str) -> Callable[[FaultRig], None]:
    def prepare(rig: FaultRig) -> None:
        identify(rig, reader)
        rig.visit.browse()
        rig.visit.choose(CERTIFICATE)
        rig.visit.next()
        rig.visit.correct("record_type", "contribution_proof")
        assert rig.visit.step is Step.FORM

    return prepare


def _card_in_away(rig: FaultRig) -> None:
    """The citizen goes on filling the form: nothing they did is lost."""
    assert rig.visit.step is Step.FORM and rig.visit.session.identity is not None
    assert rig.visit.session.answers["record_type"] == "contribution_proof"


def _card_in_finish(reader: str) -> Callable[[FaultRig], None]:
    def finish(rig: FaultRig) -> None:
        visit = rig.visit
        visit.correct("period", "12m")
        visit.next()
        visit.next()
        assert visit.step is Step.REVIEW
        # the card still on the reader after the replug is known again: taking it back ends the visit
        submit_and_leave(rig, reader, "handout.certificate_printed")

    return finish


def _camera_prepare(rig: FaultRig) -> None:
    rig.visit.face_required = True
    camera = rig.emulator("camera")
    camera.leave()  # nobody in front of it: the check waits for a face, and cannot pass before the unplug
    wait_for(lambda: camera.scene.kind == "none", "the person walked out of the picture")
    rig.visit.start()
    place(rig, "idcard")
    rig.wait_step(Step.FACE)


def _camera_away(rig: FaultRig) -> None:
    """No picture: the check ends calmly and sends the citizen to a staffed window."""
    rig.wait_step(Step.FINISH, message="face.failed.camera")
    rig.emulator("idcard").remove_card()
    rig.wait_step(Step.ATTRACT)


def _camera_finish(rig: FaultRig) -> None:
    rig.emulator("camera").person()
    identify(rig, "idcard")  # the next citizen's face check passes
    certificate_to_review(rig)
    submit_and_leave(rig, "idcard", "handout.certificate_printed")


def _to_review_of_application(rig: FaultRig) -> None:
    identify(rig, "idcard")
    application_to_review(rig)


def _receipt_printer_away(rig: FaultRig) -> None:
    """The application is accepted all the same; its progress page is offered as a QR code."""
    visit = rig.visit
    visit.confirm()
    view = rig.wait_step(Step.FINISH)
    handout = wait_for(lambda: (h := visit.view().handout) is not None and h.qr and h, "another way offered")
    assert handout.message_key != "handout.receipt_printed" and handout.qr.endswith(f"/progress/{view.receipt}")
    rig.emulator("idcard").remove_card()
    rig.wait_step(Step.RATING)
    visit.finish()
    rig.wait_step(Step.ATTRACT)


def _receipt_printer_finish(rig: FaultRig) -> None:
    printed = len(rig.emulator("receipt_printer").receipts(timeout=0))
    _to_review_of_application(rig)
    number = submit_and_leave(rig, "idcard", "handout.receipt_printed")
    receipts = rig.emulator("receipt_printer").receipts()
    assert len(receipts) == printed + 1 and number in receipts[-1].text


def _to_choose(rig: FaultRig) -> None:
    identify(rig, "idcard")
    rig.visit.browse()
    rig.wait_step(Step.CHOOSE)


def _a4_away(rig: FaultRig) -> None:
    """Certificates are not offered while they cannot be printed; the rest of the list is."""
    wait_for(lambda: "notice.no_certificates" in rig.visit.view().notices, "the list says certificates cannot print")
    with pytest.raises(InvalidTransition):
        rig.visit.choose(CERTIFICATE)
    assert rig.visit.step is Step.CHOOSE and APPLICATION in dict(rig.visit.view().services)


def _a4_finish(rig: FaultRig) -> None:
    wait_for(lambda: "notice.no_certificates" not in rig.visit.view().notices, "certificates offered again")
    printed = len(rig.emulator("a4_printer").printed())
    certificate_to_review(rig)
    submit_and_leave(rig, "idcard", "handout.certificate_printed")
    assert len(rig.emulator("a4_printer").printed()) == printed + 1


def _scanner_prepare(rig: FaultRig) -> None:
    identify(rig, "idcard")
    application_to_materials(rig)
    rig.emulator("scanner").remove()  # the citizen has not put the page down yet
    rig.visit.scan("photo")
    rig.wait_state("scanner", DeviceState.BUSY)  # looking for a page


def _scanner_away(rig: FaultRig) -> None:
    """The scan stops with a calm notice, and scanning is not offered while it is away."""
    wait_for(lambda: (rig.visit.view().message_key or "").startswith("materials.scan_problem."),
             f"the scan ended with a notice (it is {rig.visit.view().message_key})")
    wait_for(lambda: not any(m.can_scan for m in rig.visit.view().materials), "scanning no longer offered")
    with pytest.raises(InvalidTransition):
        rig.visit.scan("photo")


def _scanner_finish(rig: FaultRig) -> None:
    wait_for(lambda: all(m.can_scan for m in rig.visit.view().materials), "scanning offered again")
    scan_photo(rig)
    rig.visit.next()
    submit_and_leave(rig, "idcard", "handout.receipt_printed")


def _nothing(rig: FaultRig) -> None:
    rig.wait_step(Step.ATTRACT)


def _qr_away(rig: FaultRig) -> None:
    """The attract screen goes on (a visit can still start with a card)."""
    assert rig.visit.step is Step.ATTRACT and rig.visit.view().message_key is None


def _qr_finish(rig: FaultRig) -> None:
    check_in_unknown(rig)  # the code held up after the replug is read, and checked in


CASES = [
    Case("idcard", "identify", _identify_prepare, _idcard_away_at_identify, _identify_with("idcard")),
    Case("idcard", "card_in", _card_in_prepare("idcard"), _card_in_away, _card_in_finish("idcard")),
    Case("smartcard", "identify", _identify_prepare, _smartcard_away_at_identify, _identify_with("smartcard")),
    Case("smartcard", "card_in", _card_in_prepare("smartcard"), _card_in_away, _card_in_finish("smartcard")),
    Case("camera", "face_check", _camera_prepare, _camera_away, _camera_finish),
    Case("receipt_printer", "review", _to_review_of_application, _receipt_printer_away, _receipt_printer_finish),
    Case("a4_printer", "choose", _to_choose, _a4_away, _a4_finish),
    Case("scanner", "scanning", _scanner_prepare, _scanner_away, _scanner_finish),
    Case("qr_scanner", "attract", _nothing, _qr_away, _qr_finish),
]


def test_the_matrix_covers_every_device() -> None:
    assert {case.device for case in CASES} == set(ALL_DEVICES)


@pytest.mark.parametrize("case", CASES, ids=str)
def test_device_unplugged_mid_visit_comes_back_by_itself(fresh: FaultRig, case: Case) -> None:
    rig = fresh
    case.prepare(rig)
    mark = rig.console.mark()
    rig.unplug(case.device)
    raised = rig.console.wait_alert(f"{case.device}.device_offline", "raised", after=mark)
    assert raised["kind"] == "device_offline" and raised["device"] == case.device and raised["detail"]
    case.degraded(rig)
    assert not rig.alive(), f"crashed while {case.device} was away: {rig.alive()}"
    rig.replug(case.device)
    rig.wait_online(case.device)  # reopened by the supervisor, nobody asked it to
    rig.console.wait_alert(f"{case.device}.device_offline", "cleared", after=mark)
    case.finish(rig)
    assert rig.console.alerts(after=mark).count((f"{case.device}.device_offline", "raised")) >= 1


def test_the_identify_notice_goes_when_the_reader_is_back(fresh: FaultRig) -> None:
    rig = fresh
    _identify_prepare(rig)
    rig.unplug("idcard")
    _idcard_away_at_identify(rig)
    rig.replug("idcard")
    wait_for(lambda: rig.visit.card_kinds == {"idcard", "smartcard"}, "identify asks for either card again")
    # the same device event that gave the ID card back to identify should take the notice away
    wait_for(lambda: rig.visit.view().message_key is None, "no notice once both readers work", 2)


# -- system services restarted ------------------------------------------------------------------------------------
def test_pcscd_restarted_with_a_social_security_card_in(fresh: FaultRig) -> None:
    """pcscd goes away and comes back while the citizen's card is in the reader: the visit goes
    on, the reader is back by itself, and the card is still followed (taking it ends the visit)."""
    rig = fresh
    _card_in_prepare("smartcard")(rig)
    restart_pcscd(rig)
    rig.wait_online("smartcard")
    _card_in_away(rig)
    _card_in_finish("smartcard")(rig)


def test_cupsd_restarted_mid_print_of_a_certificate(fresh: FaultRig) -> None:
    """The print server stops right after it took the certificate and comes back: the job it
    kept prints, once, and the citizen is told it is printed. The restart is timed by wrapping
    the printer's submit (the job is in the server's queue, not printed yet)."""
    rig = fresh
    a4, cupsd = rig.device("a4_printer"), rig.emulator("a4_printer")
    printed_before = len(cupsd.printed())
    submit = a4.submit
    stopped = threading.Event()
    left: list[int] = []

    def submit_then_stop_cupsd(pdf: bytes, title: str) -> object:
        handle = submit(pdf, title)
        left.append(len(cupsd.printed()))
        rig.unplug("a4_printer")  # cupsd stops with the job queued
        stopped.set()
        return handle

    identify(rig, "idcard")
    certificate_to_review(rig)
    mark = rig.console.mark()
    a4.submit = submit_then_stop_cupsd
    try:
        rig.visit.confirm()
        wait_for(stopped.is_set, "the certificate sent to the print server")
    finally:
        del a4.submit  # the driver's own method again
    assert left == [printed_before], "the certificate was out before cupsd stopped: not mid-print"
    rig.console.wait_alert("a4_printer.device_offline", "raised", after=mark)
    assert rig.visit.step is Step.FINISH and rig.visit.view().handout.message_key != "handout.certificate_printed"
    rig.replug("a4_printer")  # cupsd starts again, with its queue
    rig.console.wait_alert("a4_printer.device_offline", "cleared", after=mark)
    wait_for(lambda: (h := rig.visit.view().handout) is not None and h.message_key == "handout.certificate_printed",
             f"the certificate printed after the restart (the handout is {rig.visit.view().handout})", 60)
    assert len(cupsd.printed()) == printed_before + 1  # printed once: not lost, not twice
    rig.emulator("idcard").remove_card()
    rig.wait_step(Step.RATING)
    rig.visit.finish()
    rig.wait_step(Step.ATTRACT)


# -- the whole matrix ------------------------------------------------------------------------------------------------
def test_no_thread_or_fd_growth_across_the_matrix(fresh: FaultRig, request: pytest.FixtureRequest) -> None:
    """Run last (after every fault above, or alone after one more round of device faults):
    the process holds no more threads or descriptors than after the warm-up."""
    rig = fresh
    if _faults_run == [request.node.name]:  # run alone: nothing happened since the warm-up
        pull_every_device(rig)
    base = rig.baseline
    assert base is not None

    def back() -> Resources | None:
        now = settled()
        return now if now.threads <= base.threads and now.fds <= base.fds else None

    try:
        now = wait_for(back, "threads and descriptors back to where they were before the matrix")
    except AssertionError:
        now = settled()
        grown = Counter(now.names) - Counter(base.names)
        gone = Counter(base.names) - Counter(now.names)
        opened, closed = Counter(now.targets) - Counter(base.targets), Counter(base.targets) - Counter(now.targets)
        raise AssertionError(f"threads {base.threads} -> {now.threads} (new: {dict(grown)}, ended: {dict(gone)}), "
                             f"fds {base.fds} -> {now.fds} (new: {dict(opened)}, closed: {dict(closed)}; "
                             f"all: {dict(Counter(now.targets))})") from None
    print(f"\nthreads {base.threads} -> {now.threads}, fds {base.fds} -> {now.fds} across the matrix")
