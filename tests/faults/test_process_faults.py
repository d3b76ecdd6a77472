"""The fault matrix for the platform, the kiosk process and the disk (issue 11).

A terminal on emulated devices in its own process, the real platform process behind a fault
proxy, a real fleet broker with the help desk listening. After each fault: the terminal
recovers by itself, no accepted submission is lost or duplicated (counted in the platform's
own database), and the help desk saw the fault.
"""
from __future__ import annotations

import itertools
import os
import random
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from process_rig import (AFTER_FINISH, APPOINTMENT_UP_TO_REVIEW, CONFIRM, PLATFORM_RECEIPT, QUEUED_RECEIPT,
                         UP_TO_REVIEW, FaultProxy, Gate, HelpDesk, KioskProcess, KioskSite, Server, TinyDisk,
                         applications, driver, enrol, fault_proxy, finish, headless, make_site, receipt_shown,
                         start_server, tiny_disk, wait_for)

from fleet.broker import Broker

# the seed of every random choice (kill points, delays); another one: KIOSK_FAULT_SEED=n
SEED = int(os.environ.get("KIOSK_FAULT_SEED", "20240611"))


@dataclass
class Site:
    """One enrolled terminal with its own fault proxy in front of the shared platform."""

    kiosk: KioskSite
    proxy: FaultProxy
    gate: Gate
    server: Server

    @property
    def id(self) -> str:
        return self.kiosk.terminal_id

    def applications(self) -> list[tuple[str, str, str]]:
        return applications(self.server, self.id)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    yield from start_server(tmp_path_factory.mktemp("faults-platform"))


@pytest.fixture(scope="module")
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Broker]:
    broker = Broker(tmp_path_factory.mktemp("faults-broker") / "fleet").start()
    try:
        yield broker
    finally:
        broker.stop()


@pytest.fixture(scope="module")
def desk(broker: Broker) -> Iterator[HelpDesk]:
    desk = HelpDesk(broker)
    yield desk
    desk.close()


def new_site(server: Server, broker: Broker, tmp: Path, terminal_id: str, *, enrol_into: Path | None = None,
             **options: int) -> Site:
    """An enrolled terminal (its key and catalogue in its data folder, or in `enrol_into` for a
    data folder that is mounted later)."""
    proxy, gate, url = fault_proxy(server)
    kiosk = make_site(tmp, terminal_id, platform_url=url, broker=broker, **options)
    enrol(server, url, terminal_id, enrol_into or kiosk.data_dir)
    return Site(kiosk, proxy, gate, server)


@pytest.fixture(scope="module")
def steady(server: Server, broker: Broker, desk: HelpDesk,
           tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Site, KioskProcess]]:
    """A terminal that keeps running through the platform faults."""
    site = new_site(server, broker, tmp_path_factory.mktemp("steady"), "T-FAULT-STEADY")
    mark = desk.mark()
    kiosk = driver(site.kiosk).start()
    try:
        kiosk.wait_line("^driver: ready")
        desk.wait(site.id, "state", lambda p: p["online"], after=mark)
        yield site, kiosk
    finally:
        site.proxy.release()
        kiosk.stop()
        site.proxy.stop()


# -- the platform down, slow, answering 5xx during a submission ------------------------------------------
@pytest.mark.parametrize("fault", ["down", "slow", "error_503"])
def test_platform_fault_gives_a_receipt_at_once_and_delivers_once_later(
        steady: tuple[Site, KioskProcess], desk: HelpDesk, fault: str) -> None:
    site, kiosk = steady
    site.proxy.set("pass")
    before = site.applications()
    for step in UP_TO_REVIEW:
        kiosk.send(step)
    arrived, mark = site.gate.arrived, desk.mark()
    site.proxy.set(fault, delay_s=120)  # "slow": held until released below
    shown = kiosk.mark()
    kiosk.send(CONFIRM)
    kiosk.send(finish(QUEUED_RECEIPT, "finish.queued"))  # the terminal's own number, at once
    receipt = receipt_shown(kiosk, shown)
    assert site.kiosk.outbox().get("pending") == 1, site.kiosk.outbox()
    desk.alert(site.id, "outbox.backlog", "raised", after=mark)  # the help desk sees it waiting
    for step in AFTER_FINISH:  # the citizen leaves
        kiosk.send(step)
    assert site.applications() == before, "the platform saw a request that was refused or is held"

    if fault == "slow":  # what the proxy held reaches the platform late, before the kiosk's next try
        site.proxy.set("down")  # (meanwhile tries fail at once)
        tries = site.kiosk.attempts(receipt)
        wait_for(lambda: site.kiosk.attempts(receipt) > tries, "the kiosk gave up on the tries held")
        site.proxy.release()
        wait_for(lambda: sum(n for k, n in site.proxy.seen.items() if k.endswith(" slow")) >= site.gate.arrived
                 - arrived, "the held requests relayed")
        assert len(site.applications()) == len(before) + 1  # the late original made it
    site.proxy.set("pass")
    wait_for(lambda: site.kiosk.outbox().get("pending", 0) == 0, f"{fault}: the outbox delivered once the "
             "platform was back")
    desk.alert(site.id, "outbox.backlog", "cleared", after=mark)
    new = [r for r in site.applications() if r not in before]
    assert len(new) == 1, f"{fault}: {len(new)} applications on the platform for one visit: {new}"
    assert new[0][2] == receipt  # the number on the citizen's receipt finds it on the platform
    rows = {local: (state, remote) for local, state, remote in site.kiosk.outbox_rows()}
    assert rows[receipt] == ("delivered", new[0][0])
    assert "driver: error" not in kiosk.output()


# -- the kiosk process killed (SIGKILL) at seeded points of a visit and of delivery, then restarted -------
KILL_POINTS = ("before_submit", "during_platform_call", "platform_accepted_answer_held", "during_delivery",
               "during_printing")


@pytest.fixture
def kill_site(server: Server, broker: Broker, tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[Site]:
    point = request.node.callspec.params["point"]
    site = new_site(server, broker, tmp_path, f"T-FAULT-KILL{KILL_POINTS.index(point)}",
                    printer_baudrate=2400 if point == "during_printing" else 0)  # printing lasts seconds
    try:
        yield site
    finally:
        site.proxy.release()
        site.proxy.stop()


@pytest.mark.parametrize("point", KILL_POINTS)
def test_kiosk_killed_comes_back_and_every_accepted_submission_is_on_the_platform_once(
        kill_site: Site, desk: HelpDesk, point: str) -> None:
    site = kill_site
    print(f"kill point {point}, seed {SEED} (KIOSK_FAULT_SEED)")
    mark = desk.mark()
    kiosk = driver(site.kiosk).start()
    try:
        kiosk.wait_line("^driver: ready")
        desk.wait(site.id, "state", lambda p: p["online"], after=mark)
        expected = kill_at(point, site, kiosk, random.Random(f"{SEED}:{point}"))
    finally:
        if kiosk.alive():
            kiosk.kill()
        site.proxy.release()
        site.proxy.set("pass")
    assert kiosk.proc is not None and kiosk.proc.returncode == -9
    queued = [row for row in site.kiosk.outbox_rows() if row[1] == "pending"]
    desk.wait(site.id, "state", lambda p: not p["online"] and p["reason"] == "lost", after=mark,
              what="the help desk told the terminal is gone (its last will)")

    # systemd's part (Restart=always): start the kiosk again, as its unit does, and touch nothing
    mark = desk.mark()
    again = headless(site.kiosk).start()
    try:
        again.wait_line("running headless")
        desk.wait(site.id, "state", lambda p: p["online"] and p["reason"] == "connected", after=mark,
                  what="the help desk told the terminal is back")
        wait_for(lambda: site.kiosk.outbox().get("pending", 0) == 0, f"{point}: the outbox delivered after the "
                 f"restart (it held {queued})")
        desk.wait(site.id, "heartbeat", lambda p: p["outbox"] and p["outbox"]["pending"] == 0, after=mark)
    finally:
        code = again.stop()
    assert code == 0, again.output()
    assert "Traceback" not in again.output() + kiosk.output(), again.output() + kiosk.output()
    on_platform = site.applications()
    assert len(on_platform) == expected, f"{point}: {len(on_platform)} applications, expected {expected}: " \
                                         f"{on_platform}"
    assert len({r[2] for r in on_platform}) == len(on_platform)  # no terminal receipt twice
    rows = site.kiosk.outbox_rows()  # each accepted one delivered, with the platform's own number
    assert set(rows) == {(local, "delivered", remote) for remote, _visit, local in on_platform}, \
        f"{point}: outbox {rows}, platform {on_platform}"


def kill_at(point: str, site: Site, kiosk: KioskProcess, rng: random.Random) -> int:
    """Play a visit up to the kill point and SIGKILL the kiosk there; returns how many applications
    the platform must hold in the end."""
    visit = APPOINTMENT_UP_TO_REVIEW if point == "during_printing" else UP_TO_REVIEW
    if point == "before_submit":  # anywhere from pressing start to the review screen
        for step in visit[:rng.randrange(1, len(visit) + 1)]:
            kiosk.send(step)
        kiosk.kill()
        return 0
    for step in visit:
        kiosk.send(step)
    arrived = site.gate.arrived
    if point == "during_platform_call":
        # the request is on its way: held before the platform saw it; it goes on after the kill
        site.proxy.set("slow", delay_s=120)
        kiosk.send_nowait(CONFIRM)
        assert site.gate.wait_arrivals(arrived + 1), kiosk.output()
        jitter(rng)
        kiosk.kill()
        assert site.kiosk.outbox().get("pending") == 1  # queued before the call was made
        assert site.applications() == []
        site.proxy.release()  # the orphaned request reaches the platform after all
        wait_for(lambda: site.proxy.seen["POST /v1/applications slow"] >= 1, "the held request relayed")
        return 1
    if point == "platform_accepted_answer_held":
        site.proxy.set("hold")
        kiosk.send_nowait(CONFIRM)
        assert site.gate.wait_arrivals(arrived + 1), kiosk.output()
        # committed on the platform, the answer still on the wire
        wait_for(lambda: len(site.applications()) == 1, "the platform's commit of the held application")
        jitter(rng)
        kiosk.kill()
        assert site.kiosk.outbox().get("pending") == 1
        return 1
    if point == "during_delivery":
        # queued while the platform answered 503; the outbox's own delivery is then cut short
        site.proxy.set("error_503")
        kiosk.send(CONFIRM)
        kiosk.send(finish(QUEUED_RECEIPT, "finish.queued"))
        for step in AFTER_FINISH:
            kiosk.send(step)
        site.proxy.set("hold")
        assert site.gate.wait_arrivals(arrived + 1), kiosk.output()
        wait_for(lambda: len(site.applications()) == 1, "the delivery committed on the platform")
        jitter(rng)
        kiosk.kill()
        assert site.kiosk.outbox().get("pending") == 1
        return 1
    assert point == "during_printing"
    shown = kiosk.mark()
    kiosk.send(CONFIRM)
    kiosk.send(finish(PLATFORM_RECEIPT))
    kiosk.wait_line(r"handout handout\.printing_receipt", after=shown)
    jitter(rng)
    kiosk.kill()
    assert not any("handout.receipt_printed" in line for line in kiosk.lines), "printing had already ended"
    assert site.kiosk.outbox().get("delivered") == 1
    return 1


def jitter(rng: random.Random) -> None:
    """A seeded pause inside a window the test holds open: where exactly the kill lands."""
    time.sleep(rng.uniform(0.0, 0.4))


# -- the disk full -----------------------------------------------------------------------------------------
_DISK_TERMINALS = itertools.count(1)


@pytest.fixture
def on_tiny_disk(server: Server, broker: Broker, tmp_path: Path) -> Iterator[tuple[Site, TinyDisk]]:
    """A new terminal whose data folder is a 4 MB tmpfs of its own (private mount namespace)."""
    site = new_site(server, broker, tmp_path, f"T-FAULT-DISK{next(_DISK_TERMINALS)}", enrol_into=tmp_path / "seed")
    disk = tiny_disk(site.kiosk.data_dir, tmp_path / "seed")
    try:
        yield site, disk
    finally:
        site.proxy.release()
        site.proxy.stop()
        disk.close()


def test_disk_full_loses_no_submission_and_the_terminal_goes_on_when_space_is_freed(
        on_tiny_disk: tuple[Site, TinyDisk], desk: HelpDesk) -> None:
    site, disk = on_tiny_disk
    mark = desk.mark()
    kiosk = driver(site.kiosk, disk.prefix).start()
    try:
        kiosk.wait_line("^driver: ready")
        desk.wait(site.id, "state", lambda p: p["online"], after=mark)
        # A: queued while the platform answers 503, before the disk fills
        for step in UP_TO_REVIEW:
            kiosk.send(step)
        site.proxy.set("error_503")
        shown = kiosk.mark()
        kiosk.send(CONFIRM)
        kiosk.send(finish(QUEUED_RECEIPT, "finish.queued"))
        queued = receipt_shown(kiosk, shown)
        for step in AFTER_FINISH:
            kiosk.send(step)
        desk.alert(site.id, "outbox.backlog", "raised", after=mark)

        assert disk.fill() > 0 and disk.free_bytes() == 0
        site.proxy.set("pass")  # the platform is back: the outbox tries A again, on a full disk
        # B: a citizen submits while the disk is full
        for step in UP_TO_REVIEW:
            kiosk.send(step)
        shown = kiosk.mark()
        kiosk.send(CONFIRM)
        kiosk.send({"do": "expect", "step": "finish", "within_s": 30})
        said = kiosk.wait_line(r"screen finish \((\w+)", after=shown).group(1)
        # not lost: either it went through (and must arrive, once) or the citizen is told calmly
        # that nothing was submitted (finish.not_submitted: "come back later or go to a window")
        assert said in ("submitted", "queued", "not_submitted"), kiosk.output()[-3000:]
        during_full = receipt_shown(kiosk, shown) if said != "not_submitted" else None
        for step in AFTER_FINISH if during_full else [AFTER_FINISH[0], AFTER_FINISH[-1]]:  # no rating asked
            kiosk.send(step)
        wait_for(lambda: site.applications(), "A reached the platform while the disk was full")
        assert kiosk.alive(), kiosk.output()[-3000:]  # a full disk under the log and the outbox: still up

        log_file = disk.path(site.kiosk.data_dir / "log" / "kiosk.log")
        logged = log_file.stat().st_size
        disk.free()
        wait_for(lambda: site.kiosk.outbox(inside=disk.prefix).get("pending", 0) == 0,
                 "the outbox caught up once space was freed")
        desk.alert(site.id, "outbox.backlog", "cleared", after=mark)
        # C: the next citizen, on a terminal that goes on by itself
        for step in UP_TO_REVIEW:
            kiosk.send(step)
        shown = kiosk.mark()
        kiosk.send(CONFIRM)
        kiosk.send(finish(PLATFORM_RECEIPT))
        after = receipt_shown(kiosk, shown)
        for step in AFTER_FINISH:
            kiosk.send(step)
        wait_for(lambda: log_file.stat().st_size > logged, "the log written again once space was freed")
    finally:
        code = kiosk.stop()
    assert code == 0 and "driver: error" not in kiosk.output(), kiosk.output()[-4000:]
    on_platform = {terminal_receipt: receipt for receipt, _visit, terminal_receipt in site.applications()}
    assert len(site.applications()) == len(on_platform) == 2 + (during_full is not None), site.applications()
    assert queued in on_platform and after in on_platform.values()
    rows = site.kiosk.outbox_rows(inside=disk.prefix)
    assert (queued, "delivered", on_platform[queued]) in rows, rows
    assert all(state == "delivered" for _local, state, _remote in rows), rows


def test_disk_filling_while_the_platform_answers_still_gives_the_citizen_a_receipt(
        on_tiny_disk: tuple[Site, TinyDisk]) -> None:
    site, disk = on_tiny_disk
    kiosk = driver(site.kiosk, disk.prefix).start()
    try:
        kiosk.wait_line("^driver: ready")
        for step in UP_TO_REVIEW:
            kiosk.send(step)
        arrived = site.gate.arrived
        site.proxy.set("hold")  # the platform commits the application; its answer waits in the proxy
        shown = kiosk.mark()
        step = kiosk.send_nowait(CONFIRM)
        assert site.gate.wait_arrivals(arrived + 1)
        disk.fill()
        site.proxy.release()
        answer = kiosk.wait_line(rf"^driver: (done|failed|error) {step}\b", after=shown).group(0)
        assert answer.startswith("driver: done"), kiosk.output()[-3000:]
        kiosk.send({"do": "expect", "step": "finish", "within_s": 30})
        receipt = receipt_shown(kiosk, shown)
        disk.free()
        site.proxy.set("pass")
        wait_for(lambda: site.kiosk.outbox(inside=disk.prefix).get("pending", 0) == 0, "delivered after the disk")
    finally:
        kiosk.stop()
    on_platform = site.applications()
    assert len(on_platform) == 1 and receipt in on_platform[0][::2], (receipt, on_platform)  # its number, once


def test_a_kiosk_restarted_on_a_full_disk_comes_up(on_tiny_disk: tuple[Site, TinyDisk], desk: HelpDesk) -> None:
    """The watchdog or a power cut restarts the kiosk while its disk is full: it must come up
    (and say so to the help desk), not exit and leave systemd restarting it forever."""
    site, disk = on_tiny_disk
    first = headless(site.kiosk, disk.prefix).start()
    first.wait_line("running headless")
    assert first.stop() == 0
    disk.fill()
    mark = desk.mark()
    again = headless(site.kiosk, disk.prefix).start()
    try:
        again.wait_line("running headless")
        desk.wait(site.id, "state", lambda p: p["online"], after=mark)
        raised_alert(desk, site, ("outbox.unavailable",), mark)  # it accepts no submission: the desk knows
    finally:
        again.stop()


def test_a_first_start_on_a_full_disk_does_not_stop_every_later_start(
        on_tiny_disk: tuple[Site, TinyDisk]) -> None:
    """A new terminal's first start meets a full disk (or a power cut): once space is freed the
    next start must work without a technician."""
    site, disk = on_tiny_disk
    disk.fill()
    first = headless(site.kiosk, disk.prefix).start()
    first.wait_line("running headless|Error")  # up, or gone with an error: either way, then...
    first.stop()
    disk.free()
    again = headless(site.kiosk, disk.prefix).start()
    try:
        again.wait_line("running headless")
    finally:
        again.stop()


# -- what the help desk is told ------------------------------------
ALERT_WAIT_S = 5.0  # five heartbeats of the test terminals (heartbeat_s = 1)


def raised_alert(desk: HelpDesk, site: Site, words: tuple[str, ...], after: int) -> dict[str, Any]:
    return desk.wait(site.id, "alert", lambda p: p["state"] == "raised" and any(
        w in f"{p['id']} {p['kind']}" for w in words), after=after, timeout_s=ALERT_WAIT_S,
        what=f"an alert about {'/'.join(words)} at the help desk")


def test_help_desk_is_told_when_the_platform_is_unreachable(steady: tuple[Site, KioskProcess],
                                                           desk: HelpDesk) -> None:
    """The platform gone while nobody submits (the night): nothing is queued, so no backlog."""
    site, _kiosk = steady
    mark = desk.mark()
    site.proxy.set("down")
    try:
        raised_alert(desk, site, ("platform", "unreachable"), mark)
    finally:
        site.proxy.set("pass")


def test_help_desk_is_alerted_when_the_disk_fills(on_tiny_disk: tuple[Site, TinyDisk], desk: HelpDesk) -> None:
    site, disk = on_tiny_disk
    mark = desk.mark()
    kiosk = headless(site.kiosk, disk.prefix).start()
    try:
        kiosk.wait_line("running headless")
        desk.wait(site.id, "state", lambda p: p["online"], after=mark)
        disk.fill()
        raised_alert(desk, site, ("disk",), mark)
    finally:
        kiosk.stop()
