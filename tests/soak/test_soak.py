"""The soak, short (CI): varied visits back to back on ONE long-lived terminal against the real
platform process, every kind of visit at least once, and what a leak or a lost application
would show on.

One soak is played per module (kiosk/soak.py; `bench/soak.py` plays the long one): the
terminal on emulated devices (ID-card reader on a pty, the social security card behind a
private pcscd, the face camera, the receipt printer, the QR scanner, the document camera,
the A4 printer through a private cupsd), the platform (`python -m govplatform serve`)
behind the fault proxy. The first round is the warm-up (every kind once); the resources
after it are the baseline the end is compared with. Memory is printed, not asserted.

What it prints is kept in artifacts/soak/short.txt.
"""
from __future__ import annotations

import io
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from soak_platform import SoakPlatform, reference_platform

from config import load_config
from kiosk.soak import ITEM_VARIANTS, OTHER_KINDS, Report, Soak, enrol, write_config

ROOT = Path(__file__).resolve().parents[2]
ARTIFACT = ROOT / "artifacts" / "soak" / "short.txt"
TERMINAL = "T-SOAK-CI-01"
ROUND = len(ITEM_VARIANTS) + len(OTHER_KINDS)  # a short round: each variant on one item, each other kind
MEASURED = 5  # visits after the warm-up: a leak of one descriptor (or thread) per visit shows as 5
# what may differ between the settled baseline and the settled end without being a leak
SLACK = {"fds": 2, "threads": 1, "tasks": 1, "children": 0}


@dataclass
class Played:
    soak: Soak
    report: Report
    platform: SoakPlatform
    output: str


@pytest.fixture(scope="module")
def played(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Played]:
    base = tmp_path_factory.mktemp("soak")
    began = time.monotonic()
    with reference_platform(base / "platform") as platform:
        started = time.monotonic()
        # one face attempt: a photo held up fails in 8 s instead of 24 (the challenge's time limit)
        config = write_config(base / "terminal", TERMINAL, platform.url, face_attempts=1)
        enrol(config, platform.enrolment_code(TERMINAL))
        enrolled = time.monotonic()
        out = io.StringIO()
        # item visits without the face check (1-4 s each; the face kinds make it), materials promised
        # where allowed (a scan takes ~1 s); the wrong person is someone the check tells apart
        # reliably (another pair was accepted at the threshold: see the report of issue 11)
        soak = Soak(load_config(config, environ={}), platform, seed=20261127, face_share=0.0, out=out,
                    report_every_s=15, warmup=ROUND, items_per_round=len(ITEM_VARIANTS), promise_share=1.0,
                    wrong_faces=(("resident", "biden.jpg"),))
        soak.start()
        out.write(f"set-up: platform {started - began:.1f} s, enrolment {enrolled - started:.1f} s, terminal "
                  f"{time.monotonic() - enrolled:.1f} s\n")
        try:
            report = soak.run(visits=ROUND + MEASURED)
        finally:
            soak.stop()
            ARTIFACT.parent.mkdir(parents=True, exist_ok=True)
            ARTIFACT.write_text(out.getvalue(), encoding="utf-8")
        print(out.getvalue())
        yield Played(soak, report, platform, out.getvalue())


def test_no_errors(played: Played) -> None:
    """No failed expectation, wrong outcome, ERROR logged or exception on any thread."""
    assert played.report.visits == ROUND + MEASURED
    assert not played.report.errors, played.output


def test_every_kind_of_visit_was_played(played: Played) -> None:
    kinds = set(played.report.kinds)
    assert set(ITEM_VARIANTS) | set(OTHER_KINDS) <= kinds, f"not played: {set(ITEM_VARIANTS) | set(OTHER_KINDS) - kinds}"
    assert {"accepted", "queued", "none"} <= set(played.report.outcomes)


def test_every_submission_reached_the_platform_exactly_once(played: Played) -> None:
    """Asked of the platform's own database: one application per visit that showed a receipt, none
    from a visit that did not, each accepted one under the receipt the citizen was shown."""
    rows = played.platform.applications(TERMINAL)
    shown = {p.visit_id: p for p in played.soak.played if p.visit_id}
    assert shown, "no visit submitted anything"
    assert sorted(r[1] for r in rows) == sorted(shown), "applications on the platform != visits that submitted"
    for receipt, visit_id, item in rows:
        p = shown[visit_id]
        assert item == p.plan.item
        if p.plan.outcome == "accepted":
            assert receipt == p.receipt
    queued = [p for p in shown.values() if p.plan.outcome == "queued"]
    assert queued, "no visit was queued for later delivery"
    assert played.platform.ratings(TERMINAL) == sum(p.rated for p in played.soak.played)


def test_resources_back_to_their_level_after_the_warm_up(played: Played) -> None:
    """Descriptors, threads and child processes, settled, no higher at the end than after the warm-up."""
    base, end = played.report.baseline, played.report.final
    assert base is not None and end is not None
    grown = {what: getattr(end, what) - getattr(base, what) for what in SLACK}
    assert all(grown[what] <= SLACK[what] for what in SLACK), (
        f"grew over {MEASURED} visits: {grown} (after warm-up: {base.line()}; end: {end.line()})\n{played.output}")
