"""Every fuzz property of tests/fuzz, run for a long time with fresh random seeds. Prints; never asserts.

    .venv/bin/python bench/fuzz_long.py --minutes 30           # the time shared by every property
    .venv/bin/python bench/fuzz_long.py --examples 200000      # at least this many examples each
    .venv/bin/python bench/fuzz_long.py --minutes 5 --only platform --only fleet
    .venv/bin/python bench/fuzz_long.py --minutes 5 --include-known   # also the xfail (known-bug) ones

CI runs the same properties with a fixed seed and a few hundred examples each
(tests/fuzz/fuzzing.py). Here each property is called again and again, each call with a
new random seed and sized by the property's speed (about a minute of examples; the first
call `--chunk`), until its share of `--minutes` is spent or it has run `--examples` examples.
Properties marked xfail (a known bug, reproduced by an @example) are skipped unless
`--include-known`.

Printed per property: examples run, seconds, examples a second, and the outcome. A failure
is printed with hypothesis's minimal (shrunk) example and the exception, and that property
stops (hypothesis has already shrunk it; more runs would find the same). An example that
runs longer than `--example-timeout` seconds fails as a hang (SIGALRM), and is shrunk too.
No example database is kept (hypothesis writes only its constants cache, in the git-ignored .hypothesis/).
"""
from __future__ import annotations

import argparse
import importlib
import io
import os
import signal
import sys
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
FUZZ_DIR = ROOT / "tests" / "fuzz"


class ExampleHung(Exception):
    """One example ran past --example-timeout: taken as a hang."""


@dataclass
class Property:
    module: str
    name: str
    test: Callable[[], None]
    known_bug: str = ""  # the xfail reason, when the property pins down a known bug
    examples: int = 0
    seconds: float = 0.0
    calls: int = 0
    outcome: str = "ok"
    failure: list[str] = field(default_factory=list)

    @property
    def label(self) -> str:
        return f"{self.module.removeprefix('test_fuzz_')}::{self.name.removeprefix('test_')}"


def _xfail_reason(test: Any) -> str:
    for mark in getattr(test, "pytestmark", []):
        if mark.name == "xfail":
            return str(mark.kwargs.get("reason", "xfail"))
    return ""


def collect(only: list[str]) -> list[Property]:
    """Every hypothesis test function of tests/fuzz/test_fuzz_*.py (names filtered by `only`)."""
    props = []
    for path in sorted(FUZZ_DIR.glob("test_fuzz_*.py")):
        module = importlib.import_module(path.stem)
        for name in sorted(vars(module)):
            test = getattr(module, name)
            if not name.startswith("test_") or not getattr(test, "is_hypothesis_test", False):
                continue
            if only and not any(word in f"{path.stem}::{name}" for word in only):
                continue
            props.append(Property(path.stem, name, test, _xfail_reason(test)))
    return props


def _counting(prop: Property, timeout_s: float) -> None:
    """Wrap the property's inner test: count examples, and fail one that hangs."""
    inner = prop.test.hypothesis.inner_test  # type: ignore[attr-defined]

    def on_alarm(_signum: int, _frame: Any) -> None:
        raise ExampleHung(f"one example ran longer than {timeout_s:g} s")

    def counted(*args: Any, **kwargs: Any) -> Any:
        prop.examples += 1
        previous = signal.signal(signal.SIGALRM, on_alarm)
        signal.setitimer(signal.ITIMER_REAL, timeout_s)
        try:
            return inner(*args, **kwargs)
        finally:
            signal.setitimer(signal.ITIMER_REAL, 0)
            signal.signal(signal.SIGALRM, previous)

    prop.test.hypothesis.inner_test = counted  # type: ignore[attr-defined]


def _calls_of(prop: Property, chunk: int) -> None:
    """The property's next call runs `chunk` examples (its own settings otherwise)."""
    from hypothesis import settings

    base = prop.test._hypothesis_internal_use_settings  # type: ignore[attr-defined]
    prop.test._hypothesis_internal_use_settings = settings(base, max_examples=chunk)  # type: ignore[attr-defined]


def run(prop: Property, budget_s: float | None, target: int | None, timeout_s: float, first_chunk: int) -> None:
    """Call the property again and again, each call a fresh random seed, sized to end near the
    budget: the first call runs `first_chunk` examples, later ones about a minute's worth."""
    from hypothesis.reporting import with_reporter

    _counting(prop, timeout_s)
    base = prop.test._hypothesis_internal_use_settings  # type: ignore[attr-defined]
    started = time.monotonic()
    chunk = first_chunk
    try:
        while True:
            before = prop.examples
            call_started = time.monotonic()
            _calls_of(prop, chunk)
            report = io.StringIO()
            try:
                with with_reporter(lambda text, out=report: out.write(f"{text}\n")):
                    prop.test()
            except Exception as exc:  # noqa: BLE001 - any failure of the property is the finding to print
                prop.outcome = "FAILED"
                prop.failure = _failure_lines(report.getvalue(), exc)
            prop.calls += 1
            prop.seconds = time.monotonic() - started
            if prop.outcome != "ok":
                break
            ran = prop.examples - before
            if ran == 0:  # hypothesis ran nothing new: the search space is exhausted
                prop.outcome = "ok (space exhausted)"
                break
            if target is not None and prop.examples >= target:
                break
            if budget_s is not None and prop.seconds >= budget_s:
                break
            if budget_s is None and target is None:
                break
            rate = ran / max(1e-3, time.monotonic() - call_started)
            slice_s = min(60.0, budget_s - prop.seconds) if budget_s is not None else 60.0
            wanted = int(rate * slice_s)
            if target is not None:
                wanted = min(wanted, target - prop.examples) if budget_s is None else wanted
            chunk = max(10, min(5000, wanted))
    finally:
        prop.test._hypothesis_internal_use_settings = base  # type: ignore[attr-defined]


def _failure_lines(reported: str, exc: BaseException) -> list[str]:
    """Hypothesis's minimal example and the exception(s), each line once."""
    lines = reported.splitlines() + list(getattr(exc, "__notes__", []))
    lines += traceback.format_exception_only(type(exc), exc)
    for sub in getattr(exc, "exceptions", ()):  # several distinct failures: an ExceptionGroup
        lines += list(getattr(sub, "__notes__", [])) + traceback.format_exception_only(type(sub), sub)
    seen: set[str] = set()
    out = []
    for line in "\n".join(lines).splitlines():
        if line.strip() and line not in seen:
            seen.add(line)
            out.append(line)
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--minutes", type=float, help="total time, shared equally by the properties")
    parser.add_argument("--examples", type=int, help="examples to run per property (at least)")
    parser.add_argument("--chunk", type=int, default=50,
                        help="examples in a property's first call (default 50); later calls are sized by its speed")
    parser.add_argument("--example-timeout", type=float, default=30.0, help="seconds before an example is a hang")
    parser.add_argument("--only", action="append", default=[], help="run properties whose name holds this")
    parser.add_argument("--include-known", action="store_true", help="also run the xfail (known-bug) properties")
    args = parser.parse_args(argv)
    if args.minutes is None and args.examples is None:
        parser.error("give --minutes and/or --examples")

    # before the test modules are imported: their settings read it (tests/fuzz/fuzzing.py): random seeds
    os.environ["FUZZ_EXAMPLES"] = str(args.chunk)
    os.environ.setdefault("KIVY_NO_ARGS", "1")
    for path in (ROOT, ROOT / "tests", FUZZ_DIR):
        sys.path.insert(0, str(path))

    props = collect(args.only)
    known = [p for p in props if p.known_bug]
    todo = props if args.include_known else [p for p in props if not p.known_bug]
    if not todo:
        print("no property matches", file=sys.stderr)
        return 2
    budget = args.minutes * 60 / len(todo) if args.minutes is not None else None
    print(f"fuzz_long: {len(todo)} properties"
          + (f", {budget:.0f} s each" if budget else "") + (f", >= {args.examples} examples each" if args.examples
                                                            else "")
          + (f"; {len(known)} known-bug properties skipped" if known and not args.include_known else ""), flush=True)
    print(f"{'property':<88} {'examples':>9} {'seconds':>8} {'ex/s':>7}  outcome", flush=True)
    started = time.monotonic()
    for prop in todo:
        run(prop, budget, args.examples, args.example_timeout, args.chunk)
        rate = prop.examples / prop.seconds if prop.seconds else 0.0
        outcome = prop.outcome + (" (known bug)" if prop.known_bug else "")
        print(f"{prop.label:<88} {prop.examples:>9} {prop.seconds:>8.1f} {rate:>7.0f}  {outcome}", flush=True)
        for line in prop.failure:
            print(f"    {line.rstrip()}", flush=True)
    failed = [p for p in todo if p.outcome == "FAILED"]
    total = sum(p.examples for p in todo)
    print(f"\n{total} examples in {time.monotonic() - started:.0f} s; {len(failed)} of {len(todo)} properties "
          f"failed{': ' + ', '.join(p.label for p in failed) if failed else ''}", flush=True)
    if known and not args.include_known:
        print("known bugs (xfail in CI, skipped here): " + ", ".join(p.label for p in known), flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
