"""Fuzzing what the print server and the scanner backend answer, as the kiosk's own code reads
it: CUPS printer and job attributes (devices/a4_printer/driver.py `assess`, `job_status`, as
pycups returns them from IPP) and SANE option constraints (devices/scanner/sane_driver.py
`_nearest`). Both come from other programs, possibly on another host (a network print
server), so their values are outside input too.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from fuzzing import fuzz
from hypothesis import event, example, given
from hypothesis import strategies as st

from devices.a4_printer.driver import Assessment, assess, job_status, split_reason
from devices.a4_printer.interface import JobReason, JobState
from devices.base import DeviceState, MediaState
from devices.scanner.sane_driver import _nearest
from devices.scanner.sane_library import TYPE_FIXED

_KEYWORDS = ["none", "media-empty", "media-empty-error", "media-empty-warning", "media-needed", "media-jam-error",
             "media-low-report", "cover-open-error", "door-open-warning", "interlock-open", "toner-empty-error",
             "marker-supply-low-warning", "offline-report", "offline", "paused", "cups-remote-pending",
             "cups-missing-filter-warning", "cups-insecure-filter-error", "other-error", "spool-area-full-report",
             "connecting-to-device", "job-completed-with-errors", "document-format-error", "-error", ""]
keywords = st.sampled_from(_KEYWORDS) | st.text(max_size=20)
# pycups gives an attribute the Python type of its IPP syntax: a list for 1setOf, else one value
printer_attrs = st.fixed_dictionaries({}, optional={
    "printer-state": st.sampled_from([3, 4, 5]) | st.integers(0, 2**31 - 1),
    "printer-state-reasons": st.lists(keywords, max_size=4) | keywords,
    "printer-state-message": st.text(max_size=30),
    "printer-is-accepting-jobs": st.booleans(),
    "device-uri": st.text(max_size=20),
})
job_attrs = st.fixed_dictionaries({}, optional={
    "job-state": st.sampled_from([3, 4, 5, 6, 7, 8, 9]) | st.integers(0, 2**31 - 1),
    "job-state-reasons": st.lists(keywords, max_size=4) | keywords,
    "job-printer-state-message": st.text(max_size=30),
    "job-media-sheets-completed": st.integers(0, 2**31 - 1),
})


def _check_assessment(result: Assessment) -> None:
    assert isinstance(result.device, DeviceState) and isinstance(result.media, MediaState)
    if result.device is DeviceState.HARDWARE_ERROR or result.offline or result.reason is not None:
        assert result.fault, "a printer that cannot print, without words for the technician"


@fuzz(200)
@given(printer_attrs)
def test_any_printer_attributes_give_a_status_with_words(attrs: dict[str, Any]) -> None:
    result = assess(attrs, "A4 printer a4 (CUPS queue Q)", "Q")
    _check_assessment(result)
    event(f"{result.device.value}/{result.media.value}")


@fuzz(150)
@given(st.integers(1, 2**31 - 1), job_attrs, printer_attrs)
def test_any_job_attributes_give_a_job_status(job_id: int, attrs: dict[str, Any],
                                             printer: dict[str, Any]) -> None:
    status = job_status(job_id, attrs, assess(printer, "A4 printer a4", "Q"))
    assert status.job_id == job_id and isinstance(status.state, JobState)
    assert status.reason is None or isinstance(status.reason, JobReason)
    if status.state is JobState.DONE:  # only a job CUPS completed without an error reason
        assert attrs.get("job-state") == 9
    if status.state is JobState.FAILED:
        assert status.reason is not None and status.detail
    status.as_dict(), status.finished


@fuzz(200)
@given(keywords)
def test_severity_suffixes_split_off(keyword: str) -> None:
    base, severity = split_reason(keyword)
    assert severity in ("error", "warning", "report") and keyword.startswith(base)


_OTHER_SYNTAX = st.text(max_size=8) | st.lists(st.integers(3, 5), max_size=2) | st.none() | st.floats()


@example({"printer-state": "idle"})
@example({"printer-state": "\u00b2"})  # "²".isdigit() but not int(): found by bench/fuzz_long.py
@fuzz(100)
@given(st.fixed_dictionaries({"printer-state": _OTHER_SYNTAX}))
def test_printer_attributes_of_another_ipp_syntax_give_a_status(attrs: dict[str, Any]) -> None:
    """A non-CUPS print server may send printer-state as a keyword or a list: the state is
    unknown, said in words, never a ValueError/TypeError out of the driver."""
    result = assess(attrs, "A4 printer a4", "Q")
    _check_assessment(result)
    value = attrs["printer-state"]
    if not (isinstance(value, str) and value.strip().isdecimal()):
        assert "printer-state" in result.fault and not result.stopped


@example({"job-state": "completed"}, {})
@example({"job-state": 9, "job-media-sheets-completed": "two"}, {})
@example({"job-state": "\u00b2"}, {})
@fuzz(100)
@given(st.fixed_dictionaries({}, optional={"job-state": _OTHER_SYNTAX, "job-media-sheets-completed": _OTHER_SYNTAX}),
       printer_attrs)
def test_job_attributes_of_another_ipp_syntax_give_a_job_status(attrs: dict[str, Any],
                                                                printer: dict[str, Any]) -> None:
    status = job_status(7, attrs, assess(printer, "A4 printer a4", "Q"))
    assert isinstance(status.state, JobState) and isinstance(status.sheets, int)
    value = attrs.get("job-state", 3)
    if not (isinstance(value, int) or (isinstance(value, str) and value.strip().isdecimal())):
        assert status.state is JobState.QUEUED and "job-state" in status.detail


@dataclass
class Option:
    """A SANE option as python-sane describes it: a constraint and a value type."""

    constraint: Any
    type: int


_NUMBER = st.integers(-10_000, 10_000) | st.floats(-1000, 1000)


@st.composite
def options(draw: st.DrawFn) -> Option:
    kind = draw(st.sampled_from(["range", "list", "none"]))
    if kind == "range":
        low, high = sorted((draw(_NUMBER), draw(_NUMBER)))
        constraint: Any = (low, high, draw(st.sampled_from([0, 0.0]) | st.floats(0.001, 50) | st.integers(1, 50)))
    elif kind == "list":
        constraint = draw(st.lists(_NUMBER, min_size=1, max_size=8))
    else:
        constraint = None
    return Option(constraint, draw(st.sampled_from([TYPE_FIXED, 1])))  # 1 = SANE_TYPE_INT


@fuzz(200)
@given(options(), st.floats(-2000, 2000))
def test_the_nearest_setting_a_scanner_allows_is_within_its_constraint(option: Option, wanted: float) -> None:
    value = _nearest(option, wanted)
    assert isinstance(value, float if option.type == TYPE_FIXED else int)
    if isinstance(option.constraint, tuple):
        low, high, _ = option.constraint
        assert low - 1 <= value <= high + 1  # ints round to the nearest whole number
    elif isinstance(option.constraint, list):
        assert any(abs(value - v) <= 0.5 for v in option.constraint)
