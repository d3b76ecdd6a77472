"""The real serial QR scanner driver against its emulator over a real pseudo-terminal,
plus the line assembler alone (fuzzed) and the arming gate on a scripted clock.

No wall-clock assertions: conditions are awaited with generous deadlines, and "nothing
happened" is shown by a later code arriving after it (lines are processed in order).
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Iterator

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from devices.base import DeviceDisconnected, DeviceEvent, DeviceState, MediaState
from devices.qr_scanner.interface import CODE_SCANNED, CODE_UNREADABLE, ScanGate
from devices.qr_scanner.serial_driver import (
    Dropped,
    Line,
    LineAssembler,
    SerialQrScanner,
    decode_text,
    split_aim,
)
from devices.qr_scanner.serial_emulator import SerialQrEmulator
from devices.supervisor import Supervisor
from waiting import wait_until

CHINESE = "粤省事 电子证照 DZZZ:44030019900101123X 深圳市"
GM65_TRIGGER = "7E 00 08 01 00 02 01 AB CD"
GM65_ACK = "02 00 00 01 00 33 31"


class Events:
    def __init__(self, device: SerialQrScanner) -> None:
        self.items: list[DeviceEvent] = []
        device.subscribe(self.items.append)

    def texts(self) -> list[str]:
        return [e.data["text"] for e in self.items if e.kind == CODE_SCANNED]

    def unreadable(self) -> list[str]:
        return [e.data["reason"] for e in self.items if e.kind == CODE_UNREADABLE]

    def wait_text(self, text: str) -> None:
        wait_until(lambda: text in self.texts())


@pytest.fixture
def qr_emulator(tmp_path: Path) -> Iterator[SerialQrEmulator]:
    emu = SerialQrEmulator(link=str(tmp_path / "dev" / "qr"))
    emu.start()
    yield emu
    emu.stop()


def make_scanner(emulator: SerialQrEmulator, **kwargs: Any) -> SerialQrScanner:
    assert emulator.link is not None
    params: dict[str, Any] = {"port": emulator.link}
    params.update(kwargs)
    return SerialQrScanner("qr", **params)


@pytest.fixture
def scanner(qr_emulator: SerialQrEmulator) -> Iterator[SerialQrScanner]:
    s = make_scanner(qr_emulator)
    s.open()
    yield s
    s.close()


# -- codes over the pty ---------------------------------------------------------------------------
@pytest.mark.parametrize("suffix", ["\r", "\n", "\r\n"])
@pytest.mark.parametrize("driver_suffix", ["same", "auto"])
def test_ascii_codes_with_each_suffix(tmp_path: Path, suffix: str, driver_suffix: str) -> None:
    with SerialQrEmulator(link=str(tmp_path / "qr"), suffix=suffix) as emu:
        s = make_scanner(emu, suffix=suffix if driver_suffix == "same" else "auto")
        events = Events(s)
        s.open()
        try:
            s.arm()
            emu.scan("YY2606010000426")
            emu.scan("https://zwfw.example.gov.cn/dzzz?id=1&x=%20")
            events.wait_text("https://zwfw.example.gov.cn/dzzz?id=1&x=%20")
            assert events.texts() == ["YY2606010000426", "https://zwfw.example.gov.cn/dzzz?id=1&x=%20"]
            assert events.unreadable() == []
            event = next(e for e in events.items if e.kind == CODE_SCANNED)
            assert event.data["symbology"] == "unknown" and event.data["raw"] == b"YY2606010000426"
        finally:
            s.close()


def test_suffix_names_are_accepted(qr_emulator: SerialQrEmulator) -> None:
    assert make_scanner(qr_emulator, suffix="CRLF").params.suffix == "crlf"
    with pytest.raises(ValidationError, match="suffix"):
        make_scanner(qr_emulator, suffix=";")


def test_chinese_utf8(qr_emulator: SerialQrEmulator, scanner: SerialQrScanner) -> None:
    events = Events(scanner)
    scanner.arm()
    qr_emulator.scan(CHINESE)
    events.wait_text(CHINESE)
    assert events.items[-1].data["raw"] == CHINESE.encode("utf-8")


def test_chinese_gb18030_scanner(tmp_path: Path) -> None:
    """A scanner set to GB18030, and a driver told so."""
    with SerialQrEmulator(link=str(tmp_path / "qr"), encoding="gb18030") as emu:
        s = make_scanner(emu, encoding="gb18030", fallback_encoding="")
        events = Events(s)
        s.open()
        try:
            s.arm()
            emu.scan(CHINESE)
            emu.scan("𠀀 四字节字符")  # outside the BMP: 4-byte GB18030
            events.wait_text("𠀀 四字节字符")
            assert events.texts() == [CHINESE, "𠀀 四字节字符"]
        finally:
            s.close()


def test_gb18030_code_on_a_utf8_driver_uses_the_fallback(qr_emulator: SerialQrEmulator,
                                                          scanner: SerialQrScanner) -> None:
    events = Events(scanner)
    scanner.arm()
    qr_emulator.scan(CHINESE, encoding="gb18030")
    qr_emulator.scan(CHINESE)  # the same code from a UTF-8 scanner: the same text, so a duplicate
    qr_emulator.scan("end")
    events.wait_text("end")
    assert events.texts() == [CHINESE, "end"]
    assert events.items[0].data["raw"] == CHINESE.encode("gb18030")
    assert scanner.counters()["duplicates"] == 1


def test_without_fallback_gb18030_bytes_are_unreadable(qr_emulator: SerialQrEmulator) -> None:
    s = make_scanner(qr_emulator, fallback_encoding="")
    events = Events(s)
    s.open()
    try:
        s.arm()
        qr_emulator.scan(CHINESE, encoding="gb18030")
        qr_emulator.scan("after")
        events.wait_text("after")
        assert events.texts() == ["after"] and events.unreadable() == ["undecodable"]
    finally:
        s.close()


def test_aim_identifier_is_stripped_and_reported(tmp_path: Path) -> None:
    with SerialQrEmulator(link=str(tmp_path / "qr"), aim_id=True) as emu:
        s = make_scanner(emu, aim_id=True)
        events = Events(s)
        s.open()
        try:
            s.arm()
            emu.scan("YY2606010000426")
            events.wait_text("YY2606010000426")
            assert events.items[-1].data["symbology"] == "qr_code"
            assert events.items[-1].data["raw"] == b"YY2606010000426"
        finally:
            s.close()


# -- faults ----------------------------------------------------------------------------------------
def test_partial_code_is_dropped_never_delivered(qr_emulator: SerialQrEmulator) -> None:
    s = make_scanner(qr_emulator, inter_char_timeout_s=0.2)
    events = Events(s)
    s.open()
    try:
        s.arm()
        qr_emulator.scan_partial("https://zwfw.example.gov.cn/dzzz?id=12345")
        wait_until(lambda: s.counters()["incomplete"] == 1)
        qr_emulator.scan("YY2606010000426")
        events.wait_text("YY2606010000426")
        assert events.texts() == ["YY2606010000426"]
        assert events.unreadable() == ["incomplete"]
    finally:
        s.close()


def test_garbage_is_unreadable_and_the_scanner_goes_on(qr_emulator: SerialQrEmulator,
                                                        scanner: SerialQrScanner) -> None:
    events = Events(scanner)
    scanner.arm()
    qr_emulator.scan_garbage()
    qr_emulator.scan_garbage(bytes(range(0x80, 0x100)))
    qr_emulator.scan("ok")
    events.wait_text("ok")
    assert events.texts() == ["ok"]
    assert events.unreadable() == ["undecodable", "undecodable"]
    assert scanner.counters()["undecodable"] == 2
    assert scanner.status().device == DeviceState.ONLINE


def test_too_long_code_is_dropped_whole(qr_emulator: SerialQrEmulator) -> None:
    s = make_scanner(qr_emulator, max_length=64)
    events = Events(s)
    s.open()
    try:
        s.arm()
        qr_emulator.scan("A" * 64)
        qr_emulator.scan("B" * 200)
        qr_emulator.scan("C" * 10)
        events.wait_text("C" * 10)
        assert events.texts() == ["A" * 64, "C" * 10]
        assert events.unreadable() == ["too_long"]
        assert [e.data["length"] for e in events.items if e.kind == CODE_UNREADABLE] == [200]
    finally:
        s.close()


def test_duplicate_is_one_scan(qr_emulator: SerialQrEmulator, scanner: SerialQrScanner) -> None:
    events = Events(scanner)
    scanner.arm()
    qr_emulator.scan_twice("YY2606010000426")
    qr_emulator.scan("next")
    events.wait_text("next")
    assert events.texts() == ["YY2606010000426", "next"]
    assert scanner.counters()["duplicates"] == 1


def test_arming_again_takes_the_same_code_again(qr_emulator: SerialQrEmulator, scanner: SerialQrScanner) -> None:
    events = Events(scanner)
    scanner.arm()
    qr_emulator.scan("YY2606010000426")
    events.wait_text("YY2606010000426")
    scanner.arm()  # the next step asks for a code
    qr_emulator.scan("YY2606010000426")
    wait_until(lambda: events.texts() == ["YY2606010000426"] * 2)


def test_codes_are_ignored_when_not_armed(qr_emulator: SerialQrEmulator, scanner: SerialQrScanner) -> None:
    events = Events(scanner)
    qr_emulator.scan("before arming")
    wait_until(lambda: scanner.counters()["ignored"] == 1)
    qr_emulator.scan_garbage()  # unreadable while not armed: counted, no event
    wait_until(lambda: scanner.counters()["undecodable"] == 1)
    scanner.arm()
    qr_emulator.scan("armed")
    events.wait_text("armed")
    scanner.disarm()
    qr_emulator.scan("after disarm")
    wait_until(lambda: scanner.counters()["ignored"] == 2)
    assert events.texts() == ["armed"] and events.unreadable() == []
    assert not scanner.armed


def test_codes_waiting_before_open_are_stale(qr_emulator: SerialQrEmulator) -> None:
    qr_emulator.scan("stale: read while the kiosk was down")
    wait_until(qr_emulator.idle)
    s = make_scanner(qr_emulator)
    events = Events(s)
    s.open()
    try:
        s.arm()
        qr_emulator.scan("fresh")
        events.wait_text("fresh")
        assert events.texts() == ["fresh"] and s.counters()["ignored"] == 0
    finally:
        s.close()


def test_slow_line_still_delivers(qr_emulator: SerialQrEmulator, scanner: SerialQrScanner) -> None:
    events = Events(scanner)
    scanner.arm()
    qr_emulator.slow(300)
    qr_emulator.scan("YY2606010000426 slow but steady")
    events.wait_text("YY2606010000426 slow but steady")


def test_line_slower_than_the_timeout_never_delivers_pieces(qr_emulator: SerialQrEmulator) -> None:
    s = make_scanner(qr_emulator, inter_char_timeout_s=0.1)
    events = Events(s)
    s.open()
    try:
        s.arm()
        qr_emulator.slow(4)  # a byte every 0.25 s: every byte is "stopped mid-way"
        qr_emulator.scan("AB")
        wait_until(lambda: s.counters()["incomplete"] == 2 and qr_emulator.idle())
        qr_emulator.slow(None)
        qr_emulator.scan("whole")
        events.wait_text("whole")
        assert events.texts() == ["whole"] and events.unreadable() == ["incomplete", "incomplete"]
    finally:
        s.close()


def test_paced_like_a_9600_baud_line(tmp_path: Path) -> None:
    with SerialQrEmulator(link=str(tmp_path / "qr"), baudrate=9600) as emu:
        s = make_scanner(emu)
        events = Events(s)
        s.open()
        try:
            s.arm()
            emu.scan("https://zwfw.example.gov.cn/" + "x" * 100)
            events.wait_text("https://zwfw.example.gov.cn/" + "x" * 100)
        finally:
            s.close()


# -- losing the scanner -------------------------------------------------------------------------------
def test_unplug_raises_disconnected_and_reopen_works(qr_emulator: SerialQrEmulator,
                                                     scanner: SerialQrScanner) -> None:
    events = Events(scanner)
    scanner.arm()
    qr_emulator.unplug()

    def lost() -> bool:
        try:
            scanner.poll()
        except DeviceDisconnected as exc:
            assert str(qr_emulator.link) in str(exc) and "cable" in str(exc)
            return True
        return False

    wait_until(lost)
    assert scanner.status().device == DeviceState.OFFLINE
    qr_emulator.replug()
    scanner.close()
    scanner.open()
    assert scanner.armed  # arming belongs to the visit's step, not to the cable
    qr_emulator.scan("after replug")
    events.wait_text("after replug")


def test_supervisor_reopens_after_replug(qr_emulator: SerialQrEmulator) -> None:
    s = make_scanner(qr_emulator)
    events = Events(s)
    sup = Supervisor([s], backoff_min=0.05, backoff_max=0.1)  # driven by round(), no thread
    try:
        wait_until(lambda: (sup.round(), s.status().device == DeviceState.ONLINE)[1])
        s.arm()
        qr_emulator.unplug()
        wait_until(lambda: (sup.round(), s.status().device == DeviceState.OFFLINE)[1])
        assert str(qr_emulator.link) in s.status().fault and "cable" in s.status().fault
        qr_emulator.replug()
        wait_until(lambda: (sup.round(), s.status().device == DeviceState.ONLINE)[1])
        assert s.status().media == MediaState.NOT_SUPPORTED
        qr_emulator.scan("back")
        events.wait_text("back")
    finally:
        sup.stop()


def test_open_without_a_port_names_it(tmp_path: Path) -> None:
    s = SerialQrScanner("qr", port=str(tmp_path / "nothing-here"))
    with pytest.raises(DeviceDisconnected, match="nothing-here"):
        s.open()
    assert s.status().device == DeviceState.OFFLINE
    with pytest.raises(DeviceDisconnected, match="nothing-here"):
        s.poll()
    results = s.self_test()
    assert not results[0].passed and "nothing-here" in results[0].detail


# -- command-triggered scanners ---------------------------------------------------------------------------
@pytest.fixture
def triggered(tmp_path: Path) -> Iterator[SerialQrEmulator]:
    emu = SerialQrEmulator(link=str(tmp_path / "qr"), trigger=GM65_TRIGGER, trigger_ack=GM65_ACK)
    emu.start()
    yield emu
    emu.stop()


def test_triggered_scanner_reads_only_when_armed(triggered: SerialQrEmulator) -> None:
    s = make_scanner(triggered, trigger_command=GM65_TRIGGER, trigger_ack=GM65_ACK, stop_command="7E 00 08 01 00 02 00")
    events = Events(s)
    s.open()
    try:
        triggered.scan("YY2606010000426")  # held in front of the scanner
        assert triggered.triggers == 0 and events.texts() == []
        s.arm()
        events.wait_text("YY2606010000426")
        assert triggered.triggers >= 1
        assert events.items[-1].data["raw"] == b"YY2606010000426"  # the ack was removed
        s.disarm()
        count = triggered.triggers
        triggered.scan("not asked for")
        results = s.self_test()  # probes with one trigger: the ack answers, the held code is ignored
        assert results[1].name == "scanner answers" and results[1].passed, results[1].detail
        assert triggered.triggers > count
        wait_until(lambda: s.counters()["ignored"] >= 1)
        assert "not asked for" not in events.texts()
    finally:
        s.close()


def test_triggered_scanner_that_does_not_answer_fails_the_self_test(triggered: SerialQrEmulator) -> None:
    s = make_scanner(triggered, trigger_command="7E 00 08 01 00 02 02 AB CD", trigger_ack=GM65_ACK)  # wrong trigger
    results = s.self_test()
    check = next(r for r in results if r.name == "scanner answers")
    assert not check.passed and "no answer to the trigger" in check.detail


def test_params_are_validated(qr_emulator: SerialQrEmulator) -> None:
    with pytest.raises(ValidationError, match="encoding"):
        make_scanner(qr_emulator, encoding="no-such-encoding")
    with pytest.raises(ValidationError, match="not a text encoding"):  # every code would raise LookupError
        make_scanner(qr_emulator, fallback_encoding="base64")
    with pytest.raises(ValidationError, match="hex"):
        make_scanner(qr_emulator, trigger_command="7E ZZ")
    with pytest.raises(ValidationError, match="trigger_command"):
        make_scanner(qr_emulator, trigger_ack=GM65_ACK)
    with pytest.raises(ValidationError):
        SerialQrScanner.Params(port="x", stray=1)


def test_self_test_reports_a_line_full_of_garbage(qr_emulator: SerialQrEmulator, scanner: SerialQrScanner) -> None:
    for _ in range(4):
        qr_emulator.scan_garbage()
    wait_until(lambda: scanner.counters()["undecodable"] == 4)
    line = next(r for r in scanner.self_test() if r.name == "codes readable")
    assert not line.passed and "baud rate" in line.detail


# -- the emulator's console -------------------------------------------------------------------------------
def test_console_commands(qr_emulator: SerialQrEmulator, scanner: SerialQrScanner) -> None:
    events = Events(scanner)
    scanner.arm()
    assert "scan TEXT" in qr_emulator.command("help")
    text = "电子证照 DZZZ:abc 12345"
    assert qr_emulator.command(f"scan {text}") == f"code of {len(text)} characters read"
    events.wait_text("电子证照 DZZZ:abc 12345")
    assert qr_emulator.command("slow fast").startswith("error:")
    assert qr_emulator.command("frobnicate").startswith("unknown")
    assert qr_emulator.command("slow 500") == "500 characters a second"
    assert "serial mode" in qr_emulator.command("status")
    assert qr_emulator.command("unplug") == "scanner unplugged"
    assert "unplugged" in qr_emulator.command("status")
    assert qr_emulator.command("replug").startswith("scanner plugged in again")


# -- the line assembler alone (no I/O) ------------------------------------------------------------------
SUFFIX_BYTES = {"\r": b"\r", "\n": b"\n", "\r\n": b"\r\n", "auto": b""}


def complete(items: list[Line | Dropped]) -> list[bytes]:
    return [i.raw for i in items if isinstance(i, Line)]


def test_assembler_splits_across_chunks_and_times_out() -> None:
    a = LineAssembler(b"\r\n", max_length=32, inter_char_timeout_s=0.3)
    assert a.feed(b"ab", 0.0) == [] and a.feed(b"c\r", 0.1) == []
    assert a.feed(b"\nxy", 0.2) == [Line(b"abc")]
    assert a.expire(0.4) == [] and a.expire(0.6) == [Dropped("incomplete", 2)]
    assert a.feed(b"late\r\n", 5.0) == [Line(b"late")]


def test_assembler_removes_the_ack_before_a_code() -> None:
    ack = bytes.fromhex(GM65_ACK)
    a = LineAssembler(b"\r", max_length=32, inter_char_timeout_s=0.3, ignore=ack)
    assert a.feed(ack[:3], 0.0) == []
    assert a.feed(ack[3:] + b"code\r", 0.01) == [Line(b"code")]
    assert a.feed(ack, 0.02) == [] and a.acks == 2 and a.pending == 0


@settings(max_examples=300, deadline=None)
@given(
    suffix=st.sampled_from(["\r", "\n", "\r\n", "auto"]),
    chunks=st.lists(st.tuples(st.binary(max_size=40), st.floats(min_value=0, max_value=1)), max_size=30),
    max_length=st.integers(min_value=1, max_value=40),
    ignore=st.sampled_from([b"", bytes.fromhex(GM65_ACK), b"\r"]),
)
def test_assembler_fuzz_random_bytes(suffix: str, chunks: list[tuple[bytes, float]], max_length: int,
                                     ignore: bytes) -> None:
    """Any bytes at any pace: no exception, and every line is a whole, bounded line of the input."""
    a = LineAssembler(SUFFIX_BYTES[suffix], max_length, inter_char_timeout_s=0.3, ignore=ignore)
    now = 0.0
    forbidden = {"\r": [b"\r"], "\n": [b"\n"], "\r\n": [b"\r\n"], "auto": [b"\r", b"\n"]}[suffix]
    for data, gap in chunks:
        now += gap
        for item in a.feed(data, now):
            if isinstance(item, Line):
                assert 0 < len(item.raw) <= max_length
                assert not any(end in item.raw for end in forbidden)
            else:
                assert item.reason in ("too_long", "incomplete") and item.length > 0
    a.expire(now + 1.0)
    assert a.pending == 0


@settings(max_examples=300, deadline=None)
@given(
    suffix=st.sampled_from(["\r", "\n", "\r\n", "auto"]),
    script=st.lists(
        st.tuples(
            st.sampled_from(["code", "partial"]),
            st.text(alphabet=st.characters(blacklist_categories=("Cs",), blacklist_characters="\r\n"),
                    min_size=1, max_size=20),
            st.integers(min_value=1, max_value=7),
        ),
        max_size=12,
    ),
)
def test_assembler_fuzz_never_yields_a_partial_code(suffix: str, script: list[tuple[str, str, int]]) -> None:
    """Whole codes and cut-off ones (each followed by the silence that ends it), sent in
    random pieces: exactly the whole codes come out, in order."""
    a = LineAssembler(SUFFIX_BYTES[suffix], max_length=200, inter_char_timeout_s=0.3)
    end = SUFFIX_BYTES[suffix] or b"\r"
    now = 0.0
    out: list[bytes] = []
    expected: list[bytes] = []
    for kind, text, pieces in script:
        body = text.encode("utf-8")
        data = body + end if kind == "code" else body[:max(1, len(body) // 2)]
        if kind == "code":
            expected.append(body)
        step = max(1, len(data) // pieces)
        for i in range(0, len(data), step):
            now += 0.01
            out += complete(a.feed(data[i:i + step], now))
        if kind == "partial":
            now += 0.5  # the scanner went quiet: the cut-off code is dropped by the next feed
            out += complete(a.expire(now))
    assert out == expected


def test_decode_helpers() -> None:
    assert decode_text("中文".encode("gb18030"), "utf-8", "gb18030") == "中文"
    assert decode_text(b"\xef\xbb\xbfYY1", "utf-8") == "YY1"
    assert decode_text(b"\xff", "utf-8", "gb18030") is None
    assert decode_text(b"xn--a", "idna") is None  # plain UnicodeError, not UnicodeDecodeError
    assert split_aim(b"]Q1abc") == ("qr_code", b"abc")
    assert split_aim(b"]C0123") == ("code128", b"123")
    assert split_aim(b"abc") == ("unknown", b"abc")


# -- arming and duplicates on a scripted clock ------------------------------------------------------------
class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_gate_timeout_and_sliding_duplicate_window() -> None:
    clock = Clock()
    gate = ScanGate(duplicate_window_s=2.0, clock=clock)
    assert gate.admit("a") == "not_armed"
    gate.arm(timeout_s=10)
    assert gate.admit("a") == "accept"
    clock.now += 1.5
    assert gate.admit("a") == "duplicate"
    clock.now += 1.5  # 3 s after the first reading, 1.5 s after the last: still the same presentation
    assert gate.admit("a") == "duplicate"
    assert gate.admit("b") == "accept"
    assert gate.admit("a") == "accept"  # another code came between: a new presentation
    clock.now += 2.5
    assert gate.admit("a") == "accept"  # the window passed
    assert gate.remaining_s() == pytest.approx(10 - 5.5)
    clock.now += 4.6
    assert gate.admit("c") == "not_armed" and not gate.armed
    gate.arm()
    assert gate.remaining_s() is None
    clock.now += 10_000
    assert gate.armed
    gate.disarm()
    assert gate.remaining_s() == 0.0
    with pytest.raises(ValueError):
        gate.arm(timeout_s=0)


def test_stale_link_path_counts_as_lost(qr_emulator: SerialQrEmulator, scanner: SerialQrScanner) -> None:
    """An unplugged USB adapter may still look open: a vanished port path is a loss too."""
    assert qr_emulator.link is not None
    target = os.readlink(qr_emulator.link)
    os.unlink(qr_emulator.link)
    try:
        with pytest.raises(DeviceDisconnected, match="no longer exists"):
            scanner.poll()
    finally:
        os.symlink(target, qr_emulator.link)
