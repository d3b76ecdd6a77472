"""Play a scripted visit against emulated devices, with no window, and say what happened.

Integrators use it to check a terminal build end to end; the soak tests play thousands
of them. A scenario is a TOML file: a name and a list of `[[steps]]`, each with a `do`
(see ACTIONS and docs/scenarios.md). Idle time is simulated: `idle` moves the visit's
clock forward instead of sleeping, so a 60-second timeout takes no real minute.
"""
from __future__ import annotations

import re
import sys
import threading
import time
import tomllib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

from config.schema import KioskConfig
from kiosk.catalogue import CatalogueError
from kiosk.terminal import Terminal
from kiosk.visit import InvalidTransition, View

ACTIONS = ("press", "place_card", "remove_card", "choose", "correct", "fill", "idle", "expect",
           "language", "device", "wait", "filter", "search", "promise", "scan", "rate")
PRESSES = {"start", "back", "cancel", "confirm", "finish", "continue", "sms", "browse", "next", "help",
           "close_help", "elder", "voice", "repeat"}


class ScenarioError(Exception):
    """The scenario file is malformed; the message names the step and the fix."""


class ScenarioFailed(AssertionError):
    """The terminal did not do what the scenario expected."""


class VirtualClock:
    """Real monotonic time plus simulated idle time."""

    def __init__(self) -> None:
        self.offset = 0.0

    def __call__(self) -> float:
        return time.monotonic() + self.offset


@dataclass
class Scenario:
    name: str
    steps: list[dict[str, Any]]
    path: str = ""

    @classmethod
    def load(cls, path: str | Path) -> Scenario:
        try:
            with open(path, "rb") as fh:
                raw = tomllib.load(fh)
        except FileNotFoundError:
            raise ScenarioError(f"scenario file {path} does not exist") from None
        except OSError as exc:
            raise ScenarioError(f"scenario file {path} cannot be read: {exc}") from None
        except UnicodeDecodeError as exc:  # tomllib decodes the whole file as UTF-8 first
            raise ScenarioError(f"scenario file {path} is not UTF-8 text (byte {exc.start + 1}); "
                                "save it as UTF-8") from None
        except tomllib.TOMLDecodeError as exc:
            raise ScenarioError(f"scenario file {path} is not valid TOML: {exc}") from None
        steps = raw.get("steps")
        if not isinstance(steps, list) or not steps:
            raise ScenarioError(f"{path}: no [[steps]]; a scenario needs at least one step")
        for n, step in enumerate(steps, 1):
            if not isinstance(step, dict):
                raise ScenarioError(f"{path}: step {n} is not a table ({type(step).__name__}); write each step as "
                                    "[[steps]] with a do = ... line")
            if step.get("do") not in ACTIONS:
                raise ScenarioError(f"{path}: step {n} has do = {step.get('do')!r}; "
                                    f"use one of: {', '.join(ACTIONS)}")
            button = step.get("button")
            if step["do"] == "press" and not (isinstance(button, str) and button in PRESSES):
                raise ScenarioError(f"{path}: step {n} presses {button!r}; "
                                    f"buttons: {', '.join(sorted(PRESSES))}")
        return cls(str(raw.get("name", Path(path).stem)), steps, str(path))


@dataclass
class Result:
    passed: bool
    views: list[View] = field(default_factory=list)
    failure: str = ""


class Runner:
    def __init__(self, cfg: KioskConfig, out: TextIO = sys.stdout, speaker: Any = None) -> None:
        for dev in cfg.devices.values():
            dev.emulate = True  # scenarios always run on emulated devices
        self.clock = VirtualClock()
        self.terminal = Terminal(cfg, clock=self.clock, speaker=speaker)
        self.out = out
        self.views: list[View] = []
        self._changed = threading.Condition()
        self._t0 = time.monotonic()
        self.terminal.visit.subscribe(self._on_view)

    def _say(self, text: str) -> None:
        self.out.write(f"{time.monotonic() - self._t0:7.2f}s  {text}\n")
        self.out.flush()

    def _on_view(self, view: View) -> None:
        with self._changed:
            self.views.append(view)
            self._changed.notify_all()
        extra = f", notice {view.message_key}" if view.message_key else ""
        if view.warning_seconds is not None:
            extra += f", idle warning {view.warning_seconds}s"
        if view.receipt:
            extra += f", receipt {view.receipt}"
        if view.handout is not None:
            extra += f", handout {view.handout.message_key}" + (f" (sms {view.handout.sms})" if view.handout.sms else "")
        if view.notices:
            extra += f", notices {' '.join(view.notices)}"
        self._say(f"screen {view.step.value} ({view.reason}{extra})")

    def _emulator(self, name: str) -> Any:
        try:
            return self.terminal.emulators[name]
        except KeyError:
            raise ScenarioError(f"no emulated device named {name!r}; devices: "
                                f"{', '.join(self.terminal.emulators) or 'none'}") from None

    def _wait_for(self, pred: Callable[[], bool], timeout: float) -> bool:
        # pred() takes the visit's lock: never call it while holding ours, or a view being
        # published from a device thread (visit lock held, wanting ours) deadlocks with us
        deadline = time.monotonic() + timeout
        while not pred():
            left = deadline - time.monotonic()
            if left <= 0:
                return False
            with self._changed:
                self._changed.wait(min(left, 0.1))
        return True

    def run(self, scenario: Scenario) -> Result:
        self._say(f"scenario: {scenario.name}")
        self.terminal.start()
        try:
            for n, step in enumerate(scenario.steps, 1):
                self._do(n, step)
        except (ScenarioFailed, InvalidTransition) as exc:
            self._say(f"FAILED at step {n}: {exc}")
            return Result(False, self.views, f"step {n}: {exc}")
        finally:
            self.terminal.stop()
        self._say(f"passed: {len(scenario.steps)} steps")
        return Result(True, self.views)

    def _do(self, n: int, step: dict[str, Any]) -> None:
        visit = self.terminal.visit
        action = step["do"]
        if action == "press":
            button = step["button"]
            self._say(f"press {button}")
            {"start": visit.start, "back": visit.back, "cancel": visit.cancel,
             "confirm": visit.confirm, "finish": visit.finish,
             "continue": visit.keep_alive, "sms": visit.request_sms, "browse": visit.browse,
             "next": visit.next, "help": visit.help, "close_help": visit.close_help,
             "elder": visit.toggle_elder, "voice": visit.toggle_voice, "repeat": visit.repeat}[button]()
        elif action == "place_card":
            self._say(f"place card {step['card']}")
            behaviour = dict(step.get("behaviour", {}))  # a smart card's misbehaviour: pull_after, blocked, ...
            self._emulator(step.get("device", "idcard")).place_card(step["card"], **behaviour)
        elif action == "remove_card":
            self._say("remove card")
            self._emulator(step.get("device", "idcard")).remove_card()
        elif action == "choose":
            self._say(f"choose {step['service']}")
            try:
                visit.choose(step["service"])
            except CatalogueError:
                offered = ", ".join(s.id for s in visit.catalogue.services()) or "none"
                raise ScenarioFailed(f"the catalogue has no service {step['service']!r} "
                                     f"(it offers: {offered})") from None
        elif action == "correct":
            self._say(f"correct field {step['field']}")
            visit.correct(step["field"], str(step["value"]))
        elif action == "fill":  # several fields typed at once: values = {key = "value", ...}
            for key, value in dict(step["values"]).items():
                self._say(f"correct field {key}")
                visit.correct(key, str(value))
                if visit.view().fields and any(f.key == key and f.problem for f in visit.view().fields):
                    raise ScenarioFailed(f"the form refused {value!r} for field {key!r}")
        elif action == "filter":
            self._say(f"filter {step['kind']} {step.get('value', '')}")
            visit.filter_services(step["kind"], step.get("value", ""))
        elif action == "search":
            self._say(f"search {step['query']!r}")
            visit.search(step["query"])
        elif action == "promise":
            self._say(f"promise material {step['material']}")
            visit.promise(step["material"])
        elif action == "scan":
            self._say(f"scan material {step['material']}")
            visit.scan(step["material"])
        elif action == "rate":
            self._say(f"rate {step['level']}")
            visit.rate(int(step["level"]))
        elif action == "language":
            visit.set_language(step["language"])
        elif action == "idle":
            seconds = float(step["seconds"])
            self._say(f"no touch for {seconds:g}s (simulated)")
            for _ in range(int(seconds)):
                self.clock.offset += 1.0
                visit.tick()
        elif action == "wait":
            time.sleep(float(step["seconds"]))
        elif action == "device":
            call = step["call"]
            emulator = self._emulator(step["device"])
            if not callable(getattr(emulator, call, None)):
                raise ScenarioError(f"step {n}: the {step['device']} emulator has no action {call!r}")
            self._say(f"{step['device']}: {call}")
            getattr(emulator, call)(*step.get("args", []))
        elif action == "expect":
            self._expect(step)

    def _expect(self, step: dict[str, Any]) -> None:
        want_step = step.get("step")
        want_msg = step.get("notice")
        want_receipt = step.get("receipt")  # a regular expression the receipt number must match
        want_handout = step.get("handout")  # the finish step's handout message key
        want_sms = step.get("sms")  # "", "offer", "sending", "sent", "failed"
        want_notices = step.get("notices")  # the choose step's equipment notices, a list
        want_services = step.get("services_include")  # service ids the choose step must show
        want_materials = step.get("materials")  # {material id = "e_licence"|"scan"|"promise"|""}
        want_home = step.get("home")  # "loading", "ready" or "unavailable"
        within = float(step.get("within_s", 10))
        visit = self.terminal.visit

        def ok() -> bool:
            view = visit.view()
            return ((want_step is None or view.step.value == want_step)
                    and (want_msg is None or view.message_key == want_msg)
                    and (want_receipt is None or re.fullmatch(want_receipt, view.receipt or "") is not None)
                    and (want_handout is None or (view.handout is not None
                                                  and view.handout.message_key == want_handout))
                    and (want_sms is None or (view.handout.sms if view.handout else "") == want_sms)
                    and (want_notices is None or list(view.notices) == list(want_notices))
                    and (want_services is None or set(want_services) <= {sid for sid, _ in view.services})
                    and (want_materials is None
                         or all({m.id: m.provided for m in view.materials}.get(k) == v
                                for k, v in dict(want_materials).items()))
                    and (want_home is None or (view.home is not None and view.home.state == want_home)))

        if not self._wait_for(ok, within):
            view = visit.view()
            raise ScenarioFailed(f"expected step {want_step!r}"
                                 + (f" with notice {want_msg!r}" if want_msg else "")
                                 + (f" with a receipt matching {want_receipt!r}" if want_receipt else "")
                                 + (f" with handout {want_handout!r}" if want_handout else "")
                                 + (f" with sms {want_sms!r}" if want_sms is not None else "")
                                 + (f" with notices {want_notices!r}" if want_notices is not None else "")
                                 + (f" showing services {want_services!r}" if want_services else "")
                                 + (f" with materials {want_materials!r}" if want_materials else "")
                                 + (f" with home {want_home!r}" if want_home else "")
                                 + f" within {within:g}s, but the screen is {view.step.value!r}"
                                 + (f" with notice {view.message_key!r}" if view.message_key else "")
                                 + (f" and receipt {view.receipt!r}" if view.receipt else "")
                                 + (f" and handout {view.handout.message_key!r} (sms {view.handout.sms!r})"
                                    if view.handout else "")
                                 + (f" and notices {list(view.notices)!r}" if view.notices else "")
                                 + (f" and materials {({m.id: m.provided for m in view.materials})!r}"
                                    if want_materials else "")
                                 + (f" and home {view.home.state!r}" if want_home and view.home else ""))
        self._say(f"ok: screen is {visit.view().step.value}")
