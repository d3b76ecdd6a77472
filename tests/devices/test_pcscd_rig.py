"""The virtual smart-card bench through the real pcscd and pyscard.

One rig per test process: libpcsclite reads PCSCLITE_CSOCK_NAME once per process, so the
rig is module-scoped, set before any pyscard context, and each test puts the bench back
(plugged, pcscd running, slots empty). Missing system packages fail with what to install.
"""
from __future__ import annotations

import os
import statistics
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from waiting import wait_until

from devices.smartcard import pcscd_rig as rig_module
from devices.smartcard.pcscd_rig import PcscdRig, RigError

ECHO = "tests.devices.pcsc_echo_card:EchoCard"
ATR_A = "3B8880010000000000718100F9"
ATR_B = "3B8F8001804F0CA000000306030001000000006A"
VPCD_PORTS = (0x8C7B, 0x8C7C)
TIMINGS: dict[str, str] = {}


def host_listeners(ports: tuple[int, ...] = VPCD_PORTS) -> set[tuple[str, int]]:
    """LISTEN sockets on `ports` in this process's (the host's) network namespace."""
    found = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except FileNotFoundError:
            continue
        for line in lines:
            fields = line.split()
            port = int(fields[1].rsplit(":", 1)[1], 16)
            if fields[3] == "0A" and port in ports:
                found.add((table, port))
    return found


def _alive(pid: int | None) -> bool:
    return pid is not None and os.path.exists(f"/proc/{pid}")


# --- PC/SC as a client sees it ---------------------------------------------------------

def _scard():
    from smartcard import scard
    return scard


def card_state(reader: str) -> tuple[bool, bytes]:
    """(card present?, ATR) of `reader`, from a fresh context."""
    scard = _scard()
    hresult, ctx = scard.SCardEstablishContext(scard.SCARD_SCOPE_USER)
    if hresult != scard.SCARD_S_SUCCESS:
        raise ConnectionError(scard.SCardGetErrorMessage(hresult))
    try:
        hresult, states = scard.SCardGetStatusChange(ctx, 0, [(reader, scard.SCARD_STATE_UNAWARE)])
        if hresult != scard.SCARD_S_SUCCESS:
            raise ConnectionError(scard.SCardGetErrorMessage(hresult))
        _, event_state, atr = states[0]
        return bool(event_state & scard.SCARD_STATE_PRESENT), bytes(atr)
    finally:
        scard.SCardReleaseContext(ctx)


def present(reader: str) -> bytes | None:
    """The ATR when a card is present, else None (also while pcscd is away)."""
    try:
        is_present, atr = card_state(reader)
    except ConnectionError:
        return None
    return atr if is_present and atr else None


def absent(reader: str) -> bool:
    try:
        return not card_state(reader)[0]
    except ConnectionError:
        return False


def list_readers() -> list[str]:
    from smartcard.System import readers
    return [str(r) for r in readers()]


def readers_or_none() -> list[str] | None:
    from smartcard.Exceptions import SmartcardException
    from smartcard.pcsc.PCSCExceptions import BaseSCardException
    try:
        return list_readers()
    except (SmartcardException, BaseSCardException):
        return None


def connect(reader: str):
    from smartcard.System import readers
    target = next(r for r in readers() if str(r) == reader)
    conn = target.createConnection()
    conn.connect()
    return conn


def forget(conn) -> None:
    """Drop a connection whose pcscd is gone. pyscard 2.3.1 would otherwise raise from
    __del__ (disconnect, then release the context, against a dead pcscd)."""
    from smartcard.Exceptions import CardConnectionException
    try:
        conn.release()
    except CardConnectionException:
        getattr(conn, "component", conn).hcontext = None  # createConnection() decorates


def note_ms(label: str, started: float) -> None:
    """A measurement for the report (printed at the end, never asserted)."""
    TIMINGS[label] = f"{(time.monotonic() - started) * 1000:.0f} ms"


# --- fixtures -----------------------------------------------------------------------------

@pytest.fixture(scope="module")
def listeners_before() -> set[tuple[str, int]]:
    return host_listeners()


@pytest.fixture(scope="module")
def rig(pcsc_rig: PcscdRig, listeners_before: set[tuple[str, int]]) -> Iterator[PcscdRig]:
    """This process's bench (tests/conftest.py: one socket path per process)."""
    names = readers_or_none()
    assert names == pcsc_rig.reader_names(), (
        f"pyscard sees {names!r}, not the bench's readers: a PC/SC context was created in "
        "this process before PCSCLITE_CSOCK_NAME was set (libpcsclite reads it once)")
    yield pcsc_rig
    if TIMINGS:
        sys.stderr.write("\npcscd bench timings: " + ", ".join(f"{k} {v}" for k, v in TIMINGS.items()) + "\n")


@pytest.fixture(autouse=True)
def bench(rig: PcscdRig, listeners_before: set[tuple[str, int]]) -> Iterator[PcscdRig]:
    """Each test gets the bench plugged, pcscd running, slots empty; nothing on the host."""
    yield rig
    if not listeners_before:
        assert host_listeners() == set(), "vpcd's ports appeared on the host's interfaces"
    state = rig.status()
    if not state["plugged"]:
        rig.plug()
    elif not state["pcscd_running"]:
        rig.start_pcscd()
    for slot in state["slots"]:
        if slot["inserted"]:
            rig.remove(slot["slot"])
    for name in rig.reader_names():
        wait_until(lambda name=name: absent(name), timeout=5)


# --- tests --------------------------------------------------------------------------------

def test_both_readers_listed(rig: PcscdRig) -> None:
    assert list_readers() == ["Virtual PCD 00 00", "Virtual PCD 00 01"]
    state = rig.status()
    assert state["pcscd_running"] and state["plugged"] and state["reader_present"]
    assert [s["inserted"] for s in state["slots"]] == [False, False]


def test_nothing_listens_on_the_host(rig: PcscdRig, listeners_before: set) -> None:
    rig.insert(0, ECHO)
    wait_until(lambda: present(rig.reader_names()[0]), timeout=10)
    # only what was there before the bench (another program's) may listen on vpcd's ports
    assert host_listeners() <= listeners_before, "vpcd's ports appeared on the host's interfaces"
    assert not Path(rig.socket_path).is_relative_to("/run")


def test_insert_apdu_and_remove(rig: PcscdRig) -> None:
    reader_a, reader_b = rig.reader_names()
    started = time.monotonic()
    rig.insert(0, ECHO, atr=ATR_A)
    atr = wait_until(lambda: present(reader_a), timeout=10, poll_s=0.005)
    note_ms("insert -> present", started)
    assert atr == bytes.fromhex(ATR_A)
    assert absent(reader_b)
    rig.insert(1, ECHO, atr=ATR_B)
    assert wait_until(lambda: present(reader_b), timeout=10) == bytes.fromhex(ATR_B)

    conn = connect(reader_a)
    try:
        assert bytes(conn.getATR()) == bytes.fromhex(ATR_A)
        data, sw1, sw2 = conn.transmit([0x00, 0xA4, 0x04, 0x00, 0x02, 0x3F, 0x00])
        assert (data, sw1, sw2) == ([], 0x90, 0x00)
        payload = list(range(200))
        rounds = []
        for _ in range(200):
            t0 = time.perf_counter()
            data, sw1, sw2 = conn.transmit([0x00, 0xB0, 0x00, 0x00, len(payload), *payload])
            rounds.append(time.perf_counter() - t0)
            assert (data, sw1, sw2) == (payload, 0x90, 0x00)
        TIMINGS["echo APDU round trip (median of 200)"] = \
            f"{statistics.median(rounds) * 1e6:.0f} us"
    finally:
        conn.disconnect()

    started = time.monotonic()
    rig.remove(0)
    wait_until(lambda: absent(reader_a), timeout=5, poll_s=0.005)
    note_ms("remove -> absent", started)
    assert present(reader_b) == bytes.fromhex(ATR_B)
    assert [s["inserted"] for s in rig.status()["slots"]] == [False, True]


def test_card_pulled_mid_apdu_is_an_error_not_a_hang(rig: PcscdRig) -> None:
    from smartcard.Exceptions import CardConnectionException

    reader = rig.reader_names()[0]
    rig.insert(0, ECHO, pull_after=1, pull_delay_s=0.2)
    wait_until(lambda: present(reader), timeout=10)
    conn = connect(reader)
    assert conn.transmit([0x00, 0xA4, 0x04, 0x00])[1:] == (0x90, 0x00)
    outcome: list[BaseException | tuple] = []

    def second_apdu() -> None:
        try:
            outcome.append(conn.transmit([0x00, 0xB0, 0x00, 0x00, 0x01, 0x42]))
        except BaseException as exc:  # noqa: BLE001 - examined below
            outcome.append(exc)

    worker = threading.Thread(target=second_apdu, daemon=True)
    worker.start()
    worker.join(10)
    assert not worker.is_alive(), "transmit hung after the card was pulled"
    assert len(outcome) == 1 and isinstance(outcome[0], CardConnectionException), outcome
    wait_until(lambda: absent(reader), timeout=5)
    slot = rig.status()["slots"][0]
    assert not slot["inserted"] and slot["pulled_count"] == 1
    forget(conn)


def test_card_removed_during_a_slow_apdu_is_an_error_not_a_hang(rig: PcscdRig) -> None:
    from smartcard.Exceptions import CardConnectionException

    reader = rig.reader_names()[1]
    rig.insert(1, ECHO)
    wait_until(lambda: present(reader), timeout=10)
    conn = connect(reader)
    outcome: list[BaseException | tuple] = []

    def slow_apdu() -> None:
        try:
            outcome.append(conn.transmit([0x00, 0xEE, 200, 0x00]))  # the card takes 2 s
        except BaseException as exc:  # noqa: BLE001 - examined below
            outcome.append(exc)

    worker = threading.Thread(target=slow_apdu, daemon=True)
    worker.start()
    rig.remove(1)
    worker.join(10)
    assert not worker.is_alive(), "transmit hung after the card was removed"
    assert len(outcome) == 1 and isinstance(outcome[0], CardConnectionException), outcome
    wait_until(lambda: absent(reader), timeout=5)
    forget(conn)


def test_pcscd_stop_and_start(rig: PcscdRig) -> None:
    from smartcard.pcsc.PCSCExceptions import EstablishContextException

    reader = rig.reader_names()[0]
    rig.insert(0, ECHO)
    wait_until(lambda: present(reader), timeout=10)
    rig.stop_pcscd()
    assert rig.status()["pcscd_running"] is False
    with pytest.raises(EstablishContextException, match="0x8010001D"):
        list_readers()
    rig.start_pcscd()
    assert list_readers() == rig.reader_names()
    assert wait_until(lambda: present(reader), timeout=10) == bytes.fromhex(ATR_A)


def test_pcscd_restart_clients_reconnect_and_the_card_is_still_in(rig: PcscdRig) -> None:
    from smartcard.Exceptions import CardConnectionException

    reader = rig.reader_names()[0]
    rig.insert(0, ECHO, atr=ATR_B)
    wait_until(lambda: present(reader), timeout=10)
    conn = connect(reader)
    assert conn.transmit([0x00, 0xA4, 0x04, 0x00])[1:] == (0x90, 0x00)
    pcscd_before = rig.status()["pcscd_pid"]

    started = time.monotonic()
    reply = rig.restart_pcscd()
    TIMINGS["pcscd restart (rig side)"] = f"{reply['elapsed_s'] * 1000:.0f} ms"
    with pytest.raises(CardConnectionException):  # the old handle belongs to the old pcscd
        conn.transmit([0x00, 0xA4, 0x04, 0x00])
    forget(conn)
    assert wait_until(readers_or_none, timeout=10) == rig.reader_names()
    assert wait_until(lambda: present(reader), timeout=10) == bytes.fromhex(ATR_B)
    note_ms("restart -> card present again", started)
    assert rig.status()["pcscd_pid"] != pcscd_before

    conn = connect(reader)
    try:
        assert conn.transmit([0x00, 0xB0, 0x00, 0x00, 0x02, 0x12, 0x34]) == ([0x12, 0x34], 0x90, 0x00)
    finally:
        conn.disconnect()


def test_unplug_and_plug(rig: PcscdRig) -> None:
    reader = rig.reader_names()[0]
    rig.insert(0, ECHO)
    wait_until(lambda: present(reader), timeout=10)

    rig.unplug()
    assert wait_until(lambda: readers_or_none() == [], timeout=10)
    state = rig.status()
    assert state["plugged"] is False and state["reader_present"] is False
    assert state["slots"][0]["inserted"]  # the card stays in the (unplugged) reader

    rig.plug()
    assert wait_until(readers_or_none, timeout=10) == rig.reader_names()
    started = time.monotonic()
    assert wait_until(lambda: present(reader), timeout=10) == bytes.fromhex(ATR_A)
    note_ms("plug -> card present again", started)


def test_bad_requests_say_why(rig: PcscdRig) -> None:
    with pytest.raises(RigError, match="slot must be"):
        rig.insert(2, ECHO)
    with pytest.raises(RigError, match="cannot import"):
        rig.insert(0, "tests.devices.no_such_card:Card")
    with pytest.raises(RigError, match="failed"):
        rig.insert(0, ECHO, no_such_arg=1)
    rig.insert(0, ECHO)
    with pytest.raises(RigError, match="already"):
        rig.insert(0, ECHO)
    assert rig.remove(0)["removed"] is True
    assert rig.remove(0)["removed"] is False


def test_stop_leaves_no_process_and_no_workdir() -> None:
    """A second rig, driven only through its control socket (pyscard stays on the first)."""
    other = PcscdRig()
    other.start()
    other.insert(1, ECHO)
    wait_until(lambda: other.status()["slots"][1]["connected"], timeout=5)
    state = other.status()
    pids = {"unshare": other.pid, "rig": state["rig_pid"], "pcscd": state["pcscd_pid"]}
    workdir = other.workdir
    assert all(_alive(pid) for pid in pids.values()), pids
    other.stop()
    assert not [name for name, pid in pids.items() if _alive(pid)], pids
    assert not workdir.exists()
    other.stop()  # idempotent


def test_missing_packages_are_named(monkeypatch: pytest.MonkeyPatch) -> None:
    real_which = rig_module.shutil.which
    monkeypatch.setattr(rig_module.shutil, "which",
                        lambda name: None if name == "unshare" else real_which(name))
    with pytest.raises(RigError, match="util-linux"):
        PcscdRig().start()
    monkeypatch.undo()
    monkeypatch.setattr(rig_module, "_find_pcscd", lambda: None)
    with pytest.raises(RigError, match="package pcscd"):
        PcscdRig().start()
    monkeypatch.undo()
    monkeypatch.setattr(rig_module, "VPCD_DRIVER", Path("/nonexistent/libifdvpcd.so"))
    with pytest.raises(RigError, match="vsmartcard-vpcd"):
        PcscdRig().start()


def test_pcscd_that_does_not_start_is_reported_with_its_log(
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    fake = tmp_path / "pcscd"
    fake.write_text("#!/bin/sh\necho 'cannot open the socket: broken on purpose'\nexit 1\n")
    fake.chmod(0o755)
    monkeypatch.setattr(rig_module, "_find_pcscd", lambda: str(fake))
    failing = PcscdRig(workdir=tmp_path / "w")
    with pytest.raises(RigError, match="(?s)pcscd did not start.*broken on purpose"):
        failing.start()
    assert failing.pid is None  # stopped: nothing of it left to kill
