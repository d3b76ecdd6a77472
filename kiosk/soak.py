"""The soak: thousands of varied visits back to back on ONE long-lived terminal, watched.

A kiosk in a park runs for months with nobody near it. Leaks (memory, file descriptors,
threads, child processes), a visit that leaves the terminal somewhere other than the attract
screen, or an application lost or sent twice show only on a terminal that lives long. So the
soak builds one `kiosk.scenario.Runner` (one Terminal, every device on its emulator), starts it
once, and plays visit after visit on it, chosen by a seeded random generator:

- every item of the catalogue at least once per round, each with a variant: plain, the
  receipt printer running out of paper (and the SMS instead), the platform down / answering
  503 / too slow / cutting its answer during the submission, the whole visit offline, the
  card taken away mid-visit, a cancel or an idle timeout (simulated time) at a random step;
- visits that must end without an application: a face that does not match the card, a photo
  held up to the camera, an expired card, a social security card pulled out mid-read or
  blocked, a QR code that is no appointment code, an appointment code the platform does not
  know;
- scenario files (tests/soak/scenarios/*.toml): `kiosk.scenario` steps plus the soak's own
  (`network` mode, `fill_form`, `provide_materials`, `through_to_review`, `card_gone`,
  `expect_handout` keys, `expect_code_refused`, `a4_test_page`), an `outcome` and whether the face check is made.

Each visit's outcome is known in advance (accepted now, queued for later delivery, or no
application) and checked; a wrong outcome, a failed expectation, an ERROR logged by the
terminal or an exception on any thread is an error, reported with its visit number and
kind. Resident memory, open descriptors, threads and child processes are sampled after every
visit and printed at intervals; at the end the outbox must drain and the platform must hold
every accepted application exactly once (and nothing else from this terminal).

The platform side (its process, the fault proxy in front of it, its database) is given to
`Soak` as a `PlatformSide`; `bench/soak.py` and `tests/soak/` build one.
"""
from __future__ import annotations

import gc
import io
import logging
import os
import random
import re
import signal
import statistics
import subprocess
import sys
import threading
import time
import tomllib
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, TextIO

from config.schema import KioskConfig
from kiosk.catalogue import Service
from kiosk.privacy import PrivacyFilter
from kiosk.scenario import Runner, ScenarioError, ScenarioFailed
from kiosk.view import Step, View
from kiosk.visit import InvalidTransition

log = logging.getLogger(__name__)

ROOT = Path(__file__).resolve().parent.parent

# what a visit must end with
ACCEPTED, QUEUED, NONE = "accepted", "queued", "none"
OUTCOMES = (ACCEPTED, QUEUED, NONE)

# the variants an item's visit is played with (each at least once per round)
ITEM_VARIANTS = ("plain", "paper_out", "down", "error_503", "slow", "cut_response", "offline",
                 "card_removed", "cancel", "idle")
# visits that are not about one item
OTHER_KINDS = ("face_wrong_person", "face_photo", "expired_card", "ssc_refused", "code_refused",
               "code_unknown")
OUTAGES = ("down", "error_503", "slow", "cut_response")  # the fault proxy's modes during submission

# what the soak types into a form; the phone is nobody's in the reference platform's residents
SAMPLE_VALUES = {"text": "测试内容", "date": "2025-03-01", "phone": "13700000000", "number": "1"}
DOCUMENTS = ("form", "notice")  # pages the document camera emulator can lay on its base
IDENTIFY_WITHIN_S = 45  # card read + face check (人证核验) + the platform
HANDOUT_WITHIN_S = 60  # a certificate: fetched, rendered, through cupsd
SLOW_DELAY_S = 4.0  # longer than the kiosk's interactive timeout (3 s): the answer comes too late
SETTLE_S = 30.0


class SoakSetupError(RuntimeError):
    """The soak could not be set up (enrolment, devices); the message says what to check."""


# -- the platform the terminal talks to -------------------------------------------------------------
class PlatformSide(Protocol):
    """The reference platform as the soak needs it: the address the terminal calls (a fault
    proxy in front of the platform), the proxy's mode, and the platform's own records."""

    url: str

    def network(self, mode: str, delay_s: float | None = None) -> None:
        """"pass", "down", "error_503", "slow" (answer after delay_s), "cut_response"."""

    def enrolment_code(self, terminal_id: str) -> str:
        """A one-time enrolment code for this terminal id."""

    def applications(self, terminal_id: str) -> list[tuple[str, str, str]]:
        """(receipt number, visit id, item id) of every application this terminal gave."""

    def ratings(self, terminal_id: str) -> int:
        """How many ratings this terminal gave."""


# -- resources of this process ----------------------------------------------------------------------
@dataclass(frozen=True)
class Resources:
    """What a leak would show on: memory, descriptors, threads, child processes."""

    rss_kb: int
    fds: int
    threads: int  # Python threads (threading.active_count)
    tasks: int  # every thread of the process, native ones included (/proc/self/task)
    children: int  # direct child processes (the platform, cupsd, pcscd, ...)

    @classmethod
    def now(cls) -> Resources:
        return cls(_rss_kb(), len(os.listdir("/proc/self/fd")), threading.active_count(),
                   len(os.listdir("/proc/self/task")), _children())

    def line(self) -> str:
        return (f"rss {self.rss_kb / 1024:.1f} MB | fds {self.fds} | threads {self.threads} "
                f"(tasks {self.tasks}) | children {self.children}")


def _rss_kb() -> int:
    with open("/proc/self/status", encoding="ascii") as fh:
        for line in fh:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def _children() -> int:
    me = str(os.getpid())
    n = 0
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", encoding="ascii", errors="replace") as fh:
                stat = fh.read()
        except OSError:
            continue
        # "pid (comm) state ppid ...": comm may hold spaces and parentheses
        if stat[stat.rfind(")") + 2:].split(" ", 2)[1] == me:
            n += 1
    return n


# -- the terminal -----------------------------------------------------------------------------------
def write_config(data_dir: Path, terminal_id: str, url: str, *, face_attempts: int = 3,
                 delivery_interval_s: float = 0.5) -> Path:
    """The soak terminal's own file: every device on its emulator, the voice off (a WAV per
    prompt would measure espeak, not the terminal), the receipts rendered into data_dir."""
    data_dir.mkdir(parents=True, exist_ok=True)
    text = f"""# written by kiosk/soak.py
[terminal]
id = "{terminal_id}"
location = "浸泡测试网点 / soak test branch"
data_dir = "{data_dir}"
[voice]
enabled = false
[platform]
url = "{url}"
timeout_s = 2.0
delivery_interval_s = {delivery_interval_s}
[face]
enabled = true
attempts = {face_attempts}
[devices.receipt_printer]
baudrate = 115200
[devices.receipt_printer.emulator]
out_dir = "{data_dir / 'receipts'}"
baudrate = 115200
"""
    path = data_dir / "terminal.toml"
    path.write_text(text, encoding="utf-8")
    return path


def enrol(config_file: Path, code: str) -> None:
    """`python -m provisioning enrol`, as a technician does it."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("KIOSK")}
    done = subprocess.run([sys.executable, "-m", "provisioning", "enrol", "--config", str(config_file),
                           "--code", code], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120,
                          check=False)
    if done.returncode != 0:
        raise SoakSetupError(f"enrolment failed ({done.returncode}): {done.stdout}{done.stderr}")


# -- who comes to the terminal ---------------------------------------------------------------------
@dataclass(frozen=True)
class Citizen:
    device: str  # the reader: "idcard" or "smartcard"
    card: str  # the emulator's card id
    face: str | None  # the camera emulator's photo of the holder (None: the card has no photo)
    certificates: bool = True  # the holder's certificate can be printed on this machine
    # certificate items the reference platform has no record for (govplatform/data/residents.toml):
    # the visit is accepted and the handout rightly says "not available"; the soak does not play them
    no_record: frozenset[str] = frozenset()


CITIZENS = (
    Citizen("idcard", "resident", "obama2.jpg"),  # 张三 (the card's photo is another shot of him)
    Citizen("idcard", "resident-long-term", "biden.jpg", no_record=frozenset({"housing-fund-record"})),  # 李四
    # 王䶮𠈌: no font installed here has U+2020C, so the certificate is refused (handout.certificate_failed,
    # an ERROR in the log) and the citizen gets the QR code and SMS instead; the receipt prints a box
    Citizen("idcard", "resident-rare-name", "astronaut.png", certificates=False),
    Citizen("smartcard", "zhang-san", "obama2.jpg"),  # 张三's social security card
    Citizen("idcard", "resident-long-address", None),
    Citizen("idcard", "hmt-permit", None, no_record=frozenset({"housing-fund-record"})),  # 陈大文
)


# (card, someone else's face in front of the camera): every card with a photo, with another test face
WRONG_FACES = (("resident", "biden.jpg"), ("resident", "astronaut.png"), ("resident-long-term", "obama2.jpg"),
               ("resident-long-term", "astronaut.png"), ("resident-rare-name", "obama2.jpg"),
               ("resident-rare-name", "biden.jpg"))


# -- visit plans -----------------------------------------------------------------------------------
@dataclass
class Plan:
    """One visit: the steps played (kiosk.scenario steps, plus the soak's own), what it must end with."""

    kind: str  # an ITEM_VARIANTS or OTHER_KINDS entry, or "file:<name>"
    item: str  # the catalogue item, "" when none
    steps: list[dict[str, Any]]
    outcome: str
    face: bool = True  # the face check (人证核验) is made in this visit

    @property
    def label(self) -> str:
        return f"{self.kind}:{self.item}" if self.item else self.kind


class Planner:
    """Rounds of visits: every item once with a variant, every other kind once, shuffled.

    `face_share`: the share of item visits that make the face check (the rest go as on a
    terminal with `face.enabled = false`); the face kinds always make it. A real face check
    takes 1-4 s of two cores: a short soak in CI leaves it to the face kinds.
    `items_per_round`: a shorter round (CI) plays that many items, each variant still once."""

    def __init__(self, services: list[Service], rng: random.Random, *, face_share: float = 1.0,
                 extra: Iterable[Plan] = (), idle_s: float = 120.0,
                 wrong_faces: tuple[tuple[str, str], ...] = WRONG_FACES, items_per_round: int | None = None) -> None:
        self.services = services
        self.rng = rng
        self.face_share = face_share
        self.items_per_round = items_per_round
        self.extra = list(extra)
        self.idle_s = idle_s
        self.wrong_faces = wrong_faces

    def round(self) -> list[Plan]:
        variants = list(ITEM_VARIANTS)
        self.rng.shuffle(variants)
        services = list(self.services)
        self.rng.shuffle(services)
        if self.items_per_round is not None:  # a short round: not every item, still every variant
            services = services[:self.items_per_round]
        pairs = [(service, variants[n] if n < len(variants) else self.rng.choice(("plain",) * 4 + ITEM_VARIANTS))
                 for n, service in enumerate(services)]
        pairs += [(self.rng.choice(services), v) for v in variants[len(services):]]  # few items: every variant still
        receipts = [s for s in self.services if s.kind != "certificate"]
        plans = []
        for service, variant in pairs:
            if variant == "paper_out" and service.kind == "certificate" and receipts:
                # a certificate comes out of the A4 printer: the receipt roll runs out on another item
                plans.append(self.item_visit(self.rng.choice(receipts), variant))
                variant = "plain"
            plans.append(self.item_visit(service, variant))
        plans += [self.other_visit(kind) for kind in OTHER_KINDS]
        plans += self.extra
        self.rng.shuffle(plans)
        return plans

    # -- one item, start to end ---------------------------------------------------------------------
    def item_visit(self, service: Service, variant: str) -> Plan:
        rng = self.rng
        face = rng.random() < self.face_share
        certificate = service.kind == "certificate"
        who = rng.choice([c for c in CITIZENS if (c.face or not face) and (c.certificates or not certificate)
                          and service.id not in c.no_record])
        if variant == "paper_out" and certificate:
            raise ValueError("a certificate is printed on the A4 printer: the receipt roll cannot run out on it")
        steps: list[dict[str, Any]] = []
        if variant == "offline":
            steps.append({"do": "network", "mode": "down"})
        if face:
            steps.append({"do": "device", "device": "camera", "call": "person", "args": [who.face]})
        steps += [{"do": "press", "button": "start"}, {"do": "expect", "step": "identify"}]
        if rng.random() < 0.1:
            steps.append({"do": "language", "language": "en"})
        steps += [{"do": "place_card", "device": who.device, "card": who.card},
                  {"do": "expect", "step": "home", "within_s": IDENTIFY_WITHIN_S,
                   "home": "unavailable" if variant == "offline" else "ready"}]
        stops = ["home"]  # where a cancel or an idle timeout may come
        steps += [{"do": "press", "button": "browse"}, {"do": "expect", "step": "choose"}]
        steps += self._find(service)
        steps += [{"do": "expect", "step": "choose", "services_include": [service.id]},
                  {"do": "choose", "service": service.id}]
        stops.append("choose")
        if service.notice or service.steps:
            steps += [{"do": "expect", "step": "notice"}, {"do": "stop_here", "at": "notice"},
                      {"do": "press", "button": "next"}]
            stops.append("notice")
        if service.fields:
            steps += [{"do": "expect", "step": "form"}, {"do": "stop_here", "at": "form"}]
            if variant == "card_removed":  # noted only: the visit goes on (once the reader has seen it go)
                steps += [{"do": "remove_card", "device": who.device}, {"do": "card_gone"}]
            if rng.random() < 0.1:
                steps += [{"do": "press", "button": "help"}, {"do": "press", "button": "close_help"}]
            steps += [{"do": "fill_form"}, {"do": "press", "button": "next"}]
            stops.append("form")
        if service.materials:
            steps += [{"do": "expect", "step": "materials"}, {"do": "stop_here", "at": "materials"},
                      {"do": "provide_materials"}, {"do": "press", "button": "next"}]
            stops.append("materials")
        steps += [{"do": "expect", "step": "review"}, {"do": "stop_here", "at": "review"}]
        stops.append("review")
        if variant == "card_removed" and not service.fields:
            steps += [{"do": "remove_card", "device": who.device}, {"do": "card_gone"}]
        if variant in ("cancel", "idle"):
            return self._cut(service, variant, steps, rng.choice(stops), who, face)
        steps = [s for s in steps if s["do"] != "stop_here"]
        outcome = ACCEPTED
        if variant in OUTAGES:
            steps.append({"do": "network", "mode": variant, "delay_s": SLOW_DELAY_S})
            outcome = QUEUED
        elif variant == "offline":
            outcome = QUEUED
        if variant == "paper_out":  # the roll is out already, or ends in the middle of the receipt
            steps.append(rng.choice(({"do": "device", "device": "receipt_printer", "call": "paper_out"},
                                     {"do": "device", "device": "receipt_printer", "call": "run_out_after",
                                      "args": [rng.randint(1, 4)]})))
        steps.append({"do": "press", "button": "confirm"})
        if outcome == ACCEPTED:
            steps.append({"do": "expect", "step": "finish", "receipt": r"SQ[0-9]{14}"})
        else:
            steps.append({"do": "expect", "step": "finish", "notice": "finish.queued", "receipt": r"L[0-9]{8}-.+"})
        if variant != "offline" and outcome == QUEUED:
            steps.append({"do": "network", "mode": "pass"})
        if variant == "paper_out":
            steps += [{"do": "expect_handout", "keys": ["handout.paper_out"], "within_s": HANDOUT_WITHIN_S},
                      {"do": "press", "button": "sms"},
                      {"do": "expect", "step": "finish", "sms": "sent", "within_s": 20},
                      {"do": "device", "device": "receipt_printer", "call": "paper_ok"}]
        elif certificate and outcome == ACCEPTED:
            steps.append({"do": "expect_handout", "keys": ["handout.certificate_printed"],
                          "within_s": HANDOUT_WITHIN_S})
        else:
            steps.append({"do": "expect_handout", "keys": ["handout.receipt_printed"], "within_s": HANDOUT_WITHIN_S})
        if variant == "card_removed":
            steps.append({"do": "press", "button": "finish"})  # the card is gone already: 结束办理
        else:
            steps.append({"do": "remove_card", "device": who.device})
        steps.append({"do": "expect", "step": "rating"})
        if rng.random() < 0.15:
            steps += [{"do": "press", "button": "finish"}, {"do": "expect", "step": "attract"}]  # 不评价
        else:
            steps += [{"do": "rate", "level": rng.randint(1, 5)},
                      {"do": "expect", "step": "attract", "notice": "rating.thanks"}]
        if variant == "offline":
            steps.append({"do": "network", "mode": "pass"})
        return Plan(variant, service.id, steps, outcome, face)

    def _find(self, service: Service) -> list[dict[str, Any]]:
        """Vary how the citizen finds the item: the whole list, a filter chip, or a search."""
        way = self.rng.randrange(4)
        if way == 1 and service.life_event:
            return [{"do": "filter", "kind": "life_event", "value": service.life_event}]
        if way == 2 and service.category:
            return [{"do": "filter", "kind": "category", "value": service.category}]
        if way == 3:
            return [{"do": "search", "query": service.title_in("zh-CN").removesuffix("一件事")[:6]}]
        return []

    def _cut(self, service: Service, variant: str, steps: list[dict[str, Any]], at: str, who: Citizen,
             face: bool) -> Plan:
        """The visit given up at step `at`: 结束办理 pressed, or the citizen walks away."""
        if at == "home":
            end = next(i for i, s in enumerate(steps) if s.get("step") == "home") + 1
        elif at == "choose":
            end = next(i for i, s in enumerate(steps) if s["do"] == "expect" and s.get("step") == "choose") + 1
        else:
            end = next(i for i, s in enumerate(steps) if s["do"] == "stop_here" and s["at"] == at)
        kept = [s for s in steps[:end] if s["do"] != "stop_here"]
        if variant == "cancel":
            kept.append({"do": "press", "button": "cancel"})
        else:
            kept.append({"do": "idle", "seconds": self.idle_s})  # simulated: warning, then the wipe
        removed = any(s["do"] == "remove_card" for s in kept)
        kept.append({"do": "expect", "step": "attract"} if removed else
                    {"do": "expect", "step": "attract", "notice": "card.take_back"})
        if not removed:
            kept += [{"do": "remove_card", "device": who.device}, {"do": "expect", "step": "attract"}]
        return Plan(variant, service.id, kept, NONE, face)

    # -- visits that end without an application -----------------------------------------------------
    def other_visit(self, kind: str) -> Plan:
        start: list[dict[str, Any]] = [{"do": "press", "button": "start"}, {"do": "expect", "step": "identify"}]
        end: list[dict[str, Any]] = [{"do": "expect", "step": "attract"}]
        steps: list[dict[str, Any]]
        if kind in ("face_wrong_person", "face_photo"):
            # a photo of 张三 is held up (the other test faces are too small on a photo to get as far as the
            # challenge: the check then times out asking to come closer)
            card, other = self.rng.choice(self.wrong_faces) if kind == "face_wrong_person" else ("resident", "")
            holder = next(c for c in CITIZENS if c.card == card)
            camera = ({"call": "person", "args": [other]} if kind == "face_wrong_person"
                      else {"call": "photo", "args": [holder.face]})
            notice = "face.failed.mismatch" if kind == "face_wrong_person" else "face.failed.liveness"
            steps = [{"do": "device", "device": "camera", **camera}, *start,
                     {"do": "place_card", "device": holder.device, "card": holder.card},
                     {"do": "expect", "step": "finish", "notice": notice, "within_s": 120},
                     {"do": "remove_card", "device": holder.device}, *end]
            return Plan(kind, "", steps, NONE, True)
        if kind == "expired_card":
            device, card = self.rng.choice((("idcard", "resident-expired"), ("smartcard", "zhang-san-expired")))
            steps = [*start, {"do": "place_card", "device": device, "card": card},
                     {"do": "expect", "step": "identify", "notice": "identify.expired"},
                     {"do": "press", "button": "cancel"}, {"do": "expect", "step": "attract", "notice": "card.take_back"},
                     {"do": "remove_card", "device": device}, *end]
            return Plan(kind, "", steps, NONE, True)
        if kind == "ssc_refused":
            behaviour, notice = self.rng.choice(((
                {"pull_after": self.rng.randint(2, 8)}, "identify.card_pulled"),
                ({"blocked": True}, "identify.card_blocked")))
            steps = [*start, {"do": "place_card", "device": "smartcard", "card": "zhang-san", "behaviour": behaviour},
                     {"do": "expect", "step": "identify", "notice": notice},
                     {"do": "remove_card", "device": "smartcard"},
                     {"do": "press", "button": "cancel"}, *end]
            return Plan(kind, "", steps, NONE, True)
        if kind == "code_refused":  # a payment code held up to the scanner: refused on the attract screen
            code = self.rng.choice(("https://pay.example.com/qr/8812", "28" + "".join(
                self.rng.choice("0123456789") for _ in range(16))))
            steps = [{"do": "device", "device": "qr_scanner", "call": "scan", "args": [code]},
                     {"do": "expect_code_refused"}]
            return Plan(kind, "", steps, NONE, False)
        if kind == "code_unknown":  # a well-formed appointment code the platform has never issued
            from govapi.appointment_codes import make_appointment_code

            code = make_appointment_code("99" + "".join(self.rng.choice("0123456789") for _ in range(10)))
            steps = [{"do": "device", "device": "qr_scanner", "call": "scan", "args": [code]},
                     {"do": "expect", "step": "ticket"},
                     {"do": "expect_handout", "keys": ["ticket.unknown"], "within_s": 20},
                     {"do": "press", "button": "finish"}, *end]
            return Plan(kind, "", steps, NONE, False)
        raise ValueError(f"no visit kind {kind!r}")


def load_plans(directory: Path) -> list[Plan]:
    """Extra visits from scenario files: `kiosk.scenario` steps (and the soak's own), an
    `outcome` ("accepted", "queued", "none"; default "none") and an optional `face = false`."""
    plans = []
    for path in sorted(directory.glob("*.toml")):
        try:
            raw = tomllib.loads(path.read_text(encoding="utf-8"))
        except tomllib.TOMLDecodeError as exc:
            raise ScenarioError(f"{path}: not valid TOML: {exc}") from None
        outcome = raw.get("outcome", NONE)
        if outcome not in OUTCOMES or not isinstance(raw.get("steps"), list):
            raise ScenarioError(f"{path}: needs [[steps]] and an outcome of {', '.join(OUTCOMES)}")
        plans.append(Plan(f"file:{path.stem}", str(raw.get("item", "")), list(raw["steps"]), outcome,
                          bool(raw.get("face", True))))
    return plans


# -- what happened ---------------------------------------------------------------------------------
@dataclass
class VisitError:
    visit: int
    label: str
    what: str
    log_tail: str = ""

    def line(self) -> str:
        return f"ERROR visit {self.visit} ({self.label}): {self.what}"


@dataclass
class Played:
    """One visit as played: what the citizen was shown, and the visit id behind it."""

    number: int
    plan: Plan
    seconds: float = 0.0
    receipt: str | None = None
    visit_id: str = ""
    rated: bool = False


@dataclass
class Sample:
    visit: int
    at_s: float
    resources: Resources


@dataclass
class Report:
    visits: int = 0
    seconds: float = 0.0
    kinds: Counter[str] = field(default_factory=Counter)
    outcomes: Counter[str] = field(default_factory=Counter)
    errors: list[VisitError] = field(default_factory=list)
    durations: dict[str, list[float]] = field(default_factory=dict)  # kind -> seconds of each visit
    warnings: Counter[str] = field(default_factory=Counter)  # logger name -> WARNING lines (expected under faults)
    samples: list[Sample] = field(default_factory=list)
    baseline: Resources | None = None  # settled, after the warm-up
    final: Resources | None = None  # settled, after the last visit and the outbox drained
    warmup: int = 0
    applications: int = 0  # on the platform, from this terminal
    ratings: int = 0

    @property
    def visits_per_minute(self) -> float:
        return 60.0 * self.visits / self.seconds if self.seconds else 0.0

    @property
    def errors_per_1000(self) -> float:
        return 1000.0 * len(self.errors) / self.visits if self.visits else 0.0

    def growth_kb_per_1000(self) -> float | None:
        """Resident memory growth from a linear fit over the samples after the warm-up."""
        points = [(s.visit, s.resources.rss_kb) for s in self.samples if s.visit > self.warmup]
        if len(points) < 3 or len({v for v, _ in points}) < 2:
            return None
        slope, _ = statistics.linear_regression([float(v) for v, _ in points], [float(r) for _, r in points])
        return slope * 1000.0

    def summary(self) -> str:
        growth = self.growth_kb_per_1000()
        first = self.samples[0].resources if self.samples else None
        last = self.samples[-1].resources if self.samples else None
        lines = [
            f"visits {self.visits} in {self.seconds / 60:.1f} min: {self.visits_per_minute:.1f} visits/min",
            "outcomes: " + ", ".join(f"{k} {n}" for k, n in sorted(self.outcomes.items())),
            "kinds (visits, median seconds): " + ", ".join(
                f"{k} {n} ({statistics.median(self.durations.get(k, [0.0])):.1f} s)"
                for k, n in sorted(self.kinds.items())),
        ]
        if first and last:
            lines.append(f"rss first {first.rss_kb / 1024:.1f} MB, last {last.rss_kb / 1024:.1f} MB")
        if growth is not None:
            lines.append(f"memory growth after the warm-up ({self.warmup} visits): {growth / 1024:.2f} MB per "
                         "1,000 visits (linear fit)")
        if self.baseline and self.final:
            lines.append(f"after warm-up (settled): {self.baseline.line()}")
            lines.append(f"at the end (settled):    {self.final.line()}")
        lines.append(f"platform: {self.applications} applications and {self.ratings} ratings from this terminal")
        if self.warnings:
            lines.append("warnings logged (expected under faults): "
                         + ", ".join(f"{k} {n}" for k, n in self.warnings.most_common()))
        lines.append(f"errors: {len(self.errors)} ({self.errors_per_1000:.2f} per 1,000 visits)")
        lines += [e.line() for e in self.errors]
        return "\n".join(lines)


class _ErrorLog(logging.Handler):
    """Every ERROR the terminal logs is an error of the visit being played; WARNINGs are counted."""

    def __init__(self, soak: Soak) -> None:
        super().__init__(logging.WARNING)
        self.soak = soak
        self.addFilter(PrivacyFilter())  # what is kept and printed is masked like the log file

    def emit(self, record: logging.LogRecord) -> None:
        if record.levelno >= logging.ERROR:
            text = record.getMessage()
            if record.exc_info and record.exc_info[1] is not None:
                text += f" [{type(record.exc_info[1]).__name__}: {record.exc_info[1]}]"
            self.soak.error(f"logged by {record.name}: {text}")
        else:
            self.soak.report.warnings[record.name] += 1


# -- the soak --------------------------------------------------------------------------------------
class Soak:
    """One terminal, many visits. `run()` plays until `visits` or `minutes`, then checks the end."""

    def __init__(self, cfg: KioskConfig, platform: PlatformSide, *, seed: int = 1, face_share: float = 1.0,
                 out: TextIO = sys.stdout, report_every_s: float = 60.0, warmup: int | None = None,
                 extra: Iterable[Plan] = (), wrong_faces: tuple[tuple[str, str], ...] = WRONG_FACES,
                 items_per_round: int | None = None, promise_share: float = 0.5) -> None:
        self.cfg = cfg
        self.platform = platform
        self.out = out
        self.report_every_s = report_every_s
        self.warmup = warmup
        self.rng = random.Random(seed)
        self.seed = seed
        self.report = Report()
        self.runner = Runner(cfg, out=io.StringIO())
        self.terminal = self.runner.terminal
        self.planner = Planner(self.terminal.visit.catalogue.services(), self.rng, face_share=face_share,
                               extra=extra, wrong_faces=wrong_faces, items_per_round=items_per_round)
        self.promise_share = promise_share  # materials that may be promised: promised this often, else scanned
        self.played: list[Played] = []
        self._current: Played | None = None
        self._lock = threading.Lock()
        self._stop_ticks = threading.Event()
        self._ticker: threading.Thread | None = None
        self._errors_log = _ErrorLog(self)
        self._old_excepthook = threading.excepthook
        self._started = 0.0
        self.interrupted = threading.Event()  # set from a signal handler: end after this visit, report
        self.terminal.visit.subscribe(self._on_view)

    # -- reporting ----------------------------------------------------------------------------------
    def say(self, text: str) -> None:
        self.out.write(text + "\n")
        self.out.flush()

    def error(self, what: str) -> None:
        with self._lock:
            current = self._current
            err = VisitError(current.number if current else 0, current.plan.label if current else "between visits",
                             what)
            self.report.errors.append(err)
        self.say(err.line())

    def _thread_crashed(self, args: threading.ExceptHookArgs) -> None:
        name = args.thread.name if args.thread else "?"
        self.error(f"uncaught {args.exc_type.__name__} on thread {name}: {args.exc_value}")

    def _on_view(self, view: View) -> None:
        # inside the visit's lock: the session read here is the one the view shows
        current = self._current
        if current is not None and view.step is Step.FINISH and view.receipt:
            current.receipt = view.receipt
            current.visit_id = self.terminal.visit.session.visit_id

    def _sample(self, visit: int) -> Sample:
        sample = Sample(visit, time.monotonic() - self._started, Resources.now())
        self.report.samples.append(sample)
        return sample

    def progress_line(self, sample: Sample) -> str:
        minutes = sample.at_s / 60
        rate = sample.visit / minutes if minutes else 0.0
        return (f"[{sample.at_s / 60:6.1f} min] visits {sample.visit} | {rate:.1f}/min | {sample.resources.line()} "
                f"| gc objects {len(gc.get_objects())} | errors {len(self.report.errors)}")

    # -- lifecycle ----------------------------------------------------------------------------------
    def start(self) -> None:
        logging.getLogger().addHandler(self._errors_log)
        threading.excepthook = self._thread_crashed
        self.terminal.start()
        self._ticker = threading.Thread(target=self._tick, name="soak-ticker", daemon=True)
        self._ticker.start()
        if not self.terminal.visit.catalogue.services():
            raise SoakSetupError("the terminal has no catalogue: is the platform reachable and the terminal enrolled?")
        missing = [n for n, d in self.cfg.devices.items() if d.enabled and n not in self.terminal.devices]
        if missing:
            raise SoakSetupError(f"devices left out (their emulators did not start): {', '.join(missing)}")

    def _tick(self) -> None:
        """As main.py does: the visit's clock is looked at about once a second."""
        while not self._stop_ticks.wait(1.0):
            self.terminal.visit.tick()

    def stop(self) -> None:
        self._stop_ticks.set()
        if self._ticker is not None:
            self._ticker.join(timeout=5)
        self.terminal.stop()
        threading.excepthook = self._old_excepthook
        logging.getLogger().removeHandler(self._errors_log)

    # -- the run ------------------------------------------------------------------------------------
    def run(self, visits: int | None = None, minutes: float | None = None) -> Report:
        """Play visits until `visits` were played or `minutes` passed (at least one must be given),
        then let the outbox drain and check every application on the platform."""
        if visits is None and minutes is None:
            raise ValueError("give visits or minutes: the soak stops by itself")
        self._started = time.monotonic()
        deadline = self._started + minutes * 60 if minutes is not None else None
        warmup = self.warmup if self.warmup is not None else max(1, min(100, (visits or 1000) // 10))
        self.report.warmup = warmup
        self.say(f"soak: seed {self.seed}, {len(self.planner.services)} catalogue items, "
                 f"{f'{visits} visits' if visits else f'{minutes:g} minutes'}, warm-up {warmup} visits")
        self._sample(0)
        self.say(self.progress_line(self.report.samples[-1]))
        last_report = time.monotonic()
        n = 0
        while True:
            for plan in self.planner.round():
                if (visits is not None and n >= visits) or (deadline is not None and time.monotonic() >= deadline):
                    return self._finish()
                if self.interrupted.is_set():
                    self.say(f"soak: stopped on request after {n} visits; the end is checked as usual")
                    return self._finish()
                n += 1
                self.play(n, plan)
                sample = self._sample(n)
                if n == warmup:
                    self.report.baseline = self.settled()
                    self.say(f"after the warm-up ({warmup} visits), settled: {self.report.baseline.line()}")
                if time.monotonic() - last_report >= self.report_every_s:
                    self.say(self.progress_line(sample))
                    last_report = time.monotonic()

    def play(self, number: int, plan: Plan) -> Played:
        played = Played(number, plan)
        began = time.monotonic()
        self.runner.out = io.StringIO()  # this visit's lines, kept only when it goes wrong
        self.runner.views.clear()  # the runner keeps every view: one visit's worth at a time
        with self._lock:
            self._current = played
        self.report.kinds[plan.kind] += 1
        errors_before = len(self.report.errors)
        visit = self.terminal.visit
        try:
            if visit.step is not Step.ATTRACT:
                raise ScenarioFailed(f"the visit began on step {visit.step.value}, not attract")
            visit.face_required = plan.face and self.cfg.face.enabled
            for step_no, step in enumerate(plan.steps, 1):
                self._do(step_no, step, played)
            # a citizen takes a second or two between two cards: the reader must have seen this one go
            if not self.runner._wait_for(lambda: visit.step is Step.ATTRACT and not visit.card_present, 10):
                raise ScenarioFailed(f"the visit ended on step {visit.step.value}"
                                     + (" with a card still seen on the reader" if visit.card_present else ""))
            self._check_outcome(played)
        except (ScenarioFailed, ScenarioError, InvalidTransition, AssertionError) as exc:
            self.error(f"{type(exc).__name__}: {exc}")
        except Exception as exc:  # noqa: BLE001  (anything the terminal raised into a touch is an error found)
            self.error(f"{type(exc).__name__} raised: {exc}")
        if len(self.report.errors) > errors_before:
            tail = self.runner.out.getvalue().splitlines()[-25:]
            self.report.errors[-1].log_tail = "\n".join(tail)
            self.say("  | " + "\n  | ".join(tail))
            self._recover()
        with self._lock:
            self._current = None
        played.seconds = time.monotonic() - began
        self.report.durations.setdefault(plan.kind, []).append(played.seconds)
        self.report.visits = number
        self.report.outcomes[plan.outcome] += 1
        self._forget_printed()
        # kept for the check at the end, without the steps: the soak's own memory must not grow much
        self.played.append(Played(number, Plan(plan.kind, plan.item, [], plan.outcome, plan.face), played.seconds,
                                  played.receipt, played.visit_id, played.rated))
        return played

    def _forget_printed(self) -> None:
        """The receipt printer's emulator keeps every receipt it printed (for tests to read): test
        equipment, not the terminal, so it is emptied after each visit and does not count as growth."""
        emulator = self.terminal.emulators.get(self.cfg.handout.receipt_printer)
        model = getattr(emulator, "model", None)
        if emulator is not None and model is not None and isinstance(getattr(model, "receipts", None), list):
            with emulator._lock:
                model.receipts.clear()

    def _check_outcome(self, played: Played) -> None:
        outcome, receipt = played.plan.outcome, played.receipt or ""
        tid = re.escape(self.cfg.terminal.id)
        if outcome == ACCEPTED and not re.fullmatch(r"SQ\d{14}", receipt):
            raise ScenarioFailed(f"accepted at once expected, the citizen was shown receipt {receipt!r}")
        if outcome == QUEUED and not re.fullmatch(rf"L\d{{8}}-{tid}-\d{{6}}", receipt):
            raise ScenarioFailed(f"a queued application expected, the citizen was shown receipt {receipt!r}")
        if outcome == NONE and receipt:
            raise ScenarioFailed(f"no application expected, yet the citizen was shown receipt {receipt!r}")
        if outcome != NONE and not played.visit_id:
            raise ScenarioFailed("the finish step's visit id was not seen")

    def _do(self, n: int, step: dict[str, Any], played: Played) -> None:
        action = step["do"]
        visit = self.terminal.visit
        if action == "network":
            self.platform.network(step["mode"], step.get("delay_s"))
        elif action == "fill_form":
            self._fill_form(n)
        elif action == "provide_materials":
            self._provide_materials(n)
        elif action == "expect_handout":
            keys = set(step["keys"])
            within = float(step.get("within_s", 10))
            if not self.runner._wait_for(lambda: (v := visit.view()).handout is not None
                                         and v.handout.message_key in keys, within):
                view = visit.view()
                raise ScenarioFailed(f"expected the handout to say one of {sorted(keys)} within {within:g}s, but "
                                     f"the screen is {view.step.value!r} with handout "
                                     f"{view.handout.message_key if view.handout else None!r}")
        elif action == "through_to_review":  # the chosen item's notice, form and materials, done as above
            self._through_to_review(n)
        elif action == "a4_test_page":
            self._a4_test_page()
        elif action == "card_gone":  # a citizen takes a moment: the reader has seen the card go
            if not self.runner._wait_for(lambda: not visit.card_present, 10):
                raise ScenarioFailed("the card was taken away, the terminal still sees it after 10 s")
        elif action == "expect_code_refused":  # said on the attract screen, nothing else happens
            if not self.runner._wait_for(lambda: any(v.reason == "code_refused" and v.step is Step.ATTRACT
                                                     and (v.message_key or "").startswith("code.")
                                                     for v in list(self.runner.views)), 10):
                raise ScenarioFailed(f"expected a refused code's notice on attract, the screen is "
                                     f"{visit.view().step.value!r} with notice {visit.view().message_key!r}")
        else:
            self.runner._do(n, step)
            if action == "rate":
                played.rated = True

    def _through_to_review(self, n: int) -> None:
        visit = self.terminal.visit
        for _ in range(len(Step)):
            step = visit.step
            if step is Step.REVIEW:
                return
            if step is Step.FORM:
                self._fill_form(n)
            elif step is Step.MATERIALS:
                self._provide_materials(n)
            elif step is not Step.NOTICE:
                raise ScenarioFailed(f"through_to_review: the screen is {step.value!r}, not a step of the item")
            self.runner._do(n, {"do": "press", "button": "next"})
            if visit.step is step:
                raise ScenarioFailed(f"through_to_review: {step.value} did not go on (notice {visit.view().message_key!r})")
        raise ScenarioFailed("through_to_review: the review step was not reached")

    def _a4_test_page(self) -> None:
        """The technician's test page after refilling the A4 tray (`provisioning test-print --a4`,
        here through the terminal's own open printer): CUPS keeps "media-empty" until a page prints,
        and until then the terminal rightly offers no certificates."""
        from kiosk.certificates import test_page
        from kiosk.handout import usable

        printer = self.terminal.devices.get(self.cfg.handout.a4_printer)
        if printer is None:
            raise ScenarioFailed("a4_test_page: the terminal has no A4 printer")
        pdf = test_page(self.cfg.terminal.id, self.cfg.terminal.location, time.strftime("%Y-%m-%d %H:%M"))
        final = printer.wait(printer.submit(pdf, title="test-page"), timeout_s=60)  # type: ignore[attr-defined]
        if str(getattr(final.state, "value", final.state)) != "done":
            raise ScenarioFailed(f"a4_test_page: the test page did not print ({final})")
        if not self.runner._wait_for(lambda: usable(printer), 30):
            raise ScenarioFailed(f"a4_test_page: the page printed, the terminal still says {printer.status()}")

    def _fill_form(self, n: int) -> None:
        """Every required field the card and the platform left empty, typed with a valid value."""
        values = {f.key: _sample_value(f.type, f.choices) for f in self.terminal.visit.view().fields
                  if f.required and not f.raw and f.editable}
        if values:
            self.runner._do(n, {"do": "fill", "values": values})

    def _provide_materials(self, n: int) -> None:
        """Every required material not found as an e-licence: promised where the item allows it
        (`promise_share` of the time), otherwise the paper laid on the document camera and scanned."""
        view = self.terminal.visit.view()
        for i, mat in enumerate(m for m in view.materials if m.required and not m.provided):
            if mat.promise_allowed and self.rng.random() < self.promise_share:
                self.runner._do(n, {"do": "promise", "material": mat.id})
                continue
            self.runner._do(n, {"do": "device", "device": "scanner", "call": "place",
                                "args": [DOCUMENTS[i % len(DOCUMENTS)]]})
            self.runner._do(n, {"do": "scan", "material": mat.id})
            self.runner._do(n, {"do": "expect", "step": "materials", "materials": {mat.id: "scan"}, "within_s": 30})
        self.runner._do(n, {"do": "device", "device": "scanner", "call": "remove"})

    def _recover(self) -> None:
        """After a visit went wrong: devices and network as a citizen leaves them, back to attract."""
        self.platform.network("pass")
        emulators = self.terminal.emulators
        for name, call in (("camera", "person"), ("receipt_printer", "paper_ok"), ("idcard", "remove_card"),
                           ("smartcard", "remove_card"), ("scanner", "remove"), ("a4_printer", "clear_faults")):
            emulator = emulators.get(name)
            try:
                if emulator is not None:
                    getattr(emulator, call)()
            except Exception as exc:  # noqa: BLE001  (recovery goes on with the other devices)
                self.say(f"  recovery: {name}.{call} failed: {exc}")
        self.terminal.visit.cancel()
        if not self.runner._wait_for(lambda: self.terminal.visit.step is Step.ATTRACT, 20):
            self.error(f"the terminal did not come back to attract (step {self.terminal.visit.step.value})")

    # -- the end --------------------------------------------------------------------------------------
    def settled(self, timeout: float = SETTLE_S, within: Resources | None = None) -> Resources:
        """Resources once background work (printing, identify calls) is over: the first sample
        equal to the one 0.5 s before it, or (with `within`) no higher than those counts."""
        deadline = time.monotonic() + timeout
        before = Resources.now()
        while True:
            time.sleep(0.5)
            now = Resources.now()
            if within is not None:
                if (now.fds <= within.fds and now.threads <= within.threads and now.tasks <= within.tasks
                        and now.children <= within.children):
                    return now
            elif (now.fds, now.threads, now.tasks, now.children) == (before.fds, before.threads, before.tasks,
                                                                      before.children):
                return now
            if time.monotonic() > deadline:
                return now
            before = now

    def _finish(self) -> Report:
        report = self.report
        report.seconds = time.monotonic() - self._started
        self.say(self.progress_line(report.samples[-1]))
        self.platform.network("pass")
        self._drain()
        self._check_platform()
        gc.collect()
        if report.baseline is not None:
            report.final = self.settled(within=report.baseline)
        else:
            report.final = self.settled()
        self.say(report.summary())
        return report

    def _drain(self, timeout: float = 120.0) -> None:
        link = self.terminal.link
        if link is None:
            return
        deadline = time.monotonic() + timeout
        while link.outbox.counts()["pending"] and time.monotonic() < deadline:
            link.deliverer.wake()
            time.sleep(0.5)
        counts = link.outbox.counts()
        if counts["pending"]:
            self.error(f"the outbox still holds {counts['pending']} undelivered entries after {timeout:.0f} s")
        if counts["rejected"]:
            self.error(f"the platform rejected {counts['rejected']} outbox entries")

    def _check_platform(self) -> None:
        """Every accepted or queued application on the platform exactly once, nothing else; every
        rating once."""
        tid = self.cfg.terminal.id
        rows = self.platform.applications(tid)
        self.report.applications = len(rows)
        by_visit: dict[str, list[tuple[str, str, str]]] = {}
        for row in rows:
            by_visit.setdefault(row[1], []).append(row)
        # every visit that showed a receipt (even one that should not have) must be there once
        expected = {p.visit_id: p for p in self.played if p.visit_id}
        link = self.terminal.link
        for visit_id, played in expected.items():
            found = by_visit.get(visit_id, [])
            what = f"visit {played.number} ({played.plan.label}, receipt {played.receipt})"
            if len(found) != 1:
                self.report.errors.append(VisitError(played.number, played.plan.label,
                                                     f"{len(found)} applications on the platform for {what}"))
                continue
            receipt, _, item = found[0]
            if item != played.plan.item and played.plan.item:
                self.report.errors.append(VisitError(played.number, played.plan.label,
                                                     f"the platform holds item {item} for {what}"))
            if played.plan.outcome == ACCEPTED and receipt != played.receipt:
                self.report.errors.append(VisitError(played.number, played.plan.label,
                                                     f"the platform's receipt {receipt} is not the one shown"))
            if played.plan.outcome == QUEUED and link is not None and played.receipt:
                entry = link.outbox.get(int(played.receipt.rsplit("-", 1)[1]))
                if entry.remote_receipt != receipt:
                    self.report.errors.append(VisitError(
                        played.number, played.plan.label,
                        f"the outbox says delivered as {entry.remote_receipt}, the platform holds {receipt}"))
        for visit_id, found in by_visit.items():
            if visit_id not in expected:
                self.report.errors.append(VisitError(0, "platform", f"{len(found)} application(s) of visit id "
                                                     f"{visit_id[:8]}... that no visit expected: {found}"))
        self.report.ratings = self.platform.ratings(tid)
        rated = sum(p.rated for p in self.played)
        if self.report.ratings != rated:
            self.report.errors.append(VisitError(0, "platform", f"{self.report.ratings} ratings on the platform "
                                                 f"for {rated} given"))


def _sample_value(kind: str, choices: tuple[tuple[str, str], ...]) -> str:
    """A valid value of the field's type, as a citizen would type or pick it."""
    if kind == "choice":
        return choices[0][0]
    return SAMPLE_VALUES.get(kind, SAMPLE_VALUES["text"])


def run_soak(cfg: KioskConfig, platform: PlatformSide, *, visits: int | None = None, minutes: float | None = None,
             **options: Any) -> tuple[Soak, Report]:
    """Build the soak, play it, stop the terminal; the Soak is returned for a closer look."""
    soak = Soak(cfg, platform, **options)
    # Ctrl-C or SIGTERM (a soak on a test rig stopped early) ends after the visit being played,
    # with the drain, the platform check and the summary, instead of a traceback and no figures
    previous = {sig: signal.signal(sig, lambda *_: soak.interrupted.set())
                for sig in (signal.SIGINT, signal.SIGTERM)} if threading.current_thread() is threading.main_thread() else {}
    soak.start()
    try:
        report = soak.run(visits=visits, minutes=minutes)
    finally:
        soak.stop()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    return soak, report


