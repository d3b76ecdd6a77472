"""The maintenance screen's brain without a window: the technician's PIN and card, the lockout,
the idle close, the actions on a real emulated receipt printer, and the audit log (owner-only,
one JSON line per action, nothing personal). PBKDF2 hashes here use 1,000 iterations (the
helper's default is 600,000); time is a fake clock, workers run at once."""
from __future__ import annotations

import io
import json
import os
import stat
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from config.loader import load_config
from devices.base import DeviceEvent, DeviceState, MediaState, SelfTestResult
from devices.idcard.identity import IdentityCard
from devices.receipt_printer.driver import EscPosSerialPrinter
from devices.receipt_printer.emulator import EscPosEmulator
from kiosk import maintenance as mnt
from kiosk.audit import AuditLog
from kiosk.maintenance import Maintenance, MaintenanceState, NotNow, make_hash

SALT = "kiosk-test-salt-0123"
PIN = "246810"
ITER = 1000
TECHNICIAN_ID = "110101198001010016"
CITIZEN = {"name": "张三", "id_number": "110101199003071234", "address": "北京市东城区景山前街4号"}


class Clock:
    def __init__(self) -> None:
        self.now = 1_800_000_000.0

    def __call__(self) -> float:
        return self.now


def section(**overrides: Any) -> Any:
    env = {"KIOSK__MAINTENANCE__SALT": SALT,
           "KIOSK__MAINTENANCE__PIN_HASH": make_hash("pin", PIN, SALT, ITER),
           "KIOSK__MAINTENANCE__TECHNICIAN_CARDS": json.dumps([make_hash("card", TECHNICIAN_ID, SALT, ITER)]),
           "KIOSK__MAINTENANCE__MAX_FAILURES": "3", "KIOSK__MAINTENANCE__LOCKOUT_MINUTES": "10",
           "KIOSK__MAINTENANCE__IDLE_MINUTES": "5", "KIOSK__MAINTENANCE__PIN_PAD_TIMEOUT_S": "60"}
    env.update({f"KIOSK__MAINTENANCE__{k.upper()}": v for k, v in overrides.items()})
    return load_config(environ=env).maintenance


def make(tmp_path: Path, devices: dict[str, Any] | None = None, clock: Clock | None = None,
         **kwargs: Any) -> tuple[Maintenance, AuditLog, list[Any]]:
    audit = AuditLog(tmp_path / "data" / "audit" / "maintenance.jsonl", "ZJ-TEST-0007")
    m = Maintenance(kwargs.pop("cfg", None) or section(), devices if devices is not None else {}, audit,
                    clock=clock or Clock(), run=lambda work, _name: work(), **kwargs)
    views: list[Any] = []
    m.subscribe(views.append)
    return m, audit, views


def lines(audit: AuditLog) -> list[dict[str, Any]]:
    return list(audit.entries())


def type_pin(m: Maintenance, pin: str) -> None:
    for digit in pin:
        m.press_digit(digit)
    m.submit_pin()


def citizen_card() -> IdentityCard:
    return IdentityCard("resident", **CITIZEN)


# -- credentials ------------------------------------------------------------------------------------
def test_hash_pin_prints_toml_the_config_accepts_and_never_the_pin(tmp_path: Path, monkeypatch, capsys) -> None:
    monkeypatch.setattr("sys.stdin", io.StringIO(PIN + "\n"))
    assert mnt.main(["hash-pin", "--iterations", str(ITER), "--config", str(tmp_path / "missing.toml")]) == 0
    out = capsys.readouterr().out
    assert PIN not in out and "[maintenance]" in out and 'salt = "' in out  # no salt yet: a new one
    path = tmp_path / "terminal.toml"
    path.write_text("\n".join(line for line in out.splitlines() if not line.startswith("#")) + "\n")
    cfg = load_config(path, environ={}).maintenance
    assert len(cfg.salt) >= 16 and mnt.check_hash("pin", PIN, cfg.salt, cfg.pin_hash)
    assert not mnt.check_hash("pin", "246811", cfg.salt, cfg.pin_hash)
    assert not mnt.check_hash("card", PIN, cfg.salt, cfg.pin_hash)  # a card's hash never passes as a PIN's

    monkeypatch.setattr("sys.stdin", io.StringIO(TECHNICIAN_ID + "\n"))
    assert mnt.main(["hash-card", "--salt", cfg.salt, "--iterations", str(ITER)]) == 0
    out = capsys.readouterr().out
    assert TECHNICIAN_ID not in out and "salt =" not in out and "technician_cards = [" in out
    monkeypatch.setattr("sys.stdin", io.StringIO("12\n"))
    assert mnt.main(["hash-pin", "--salt", cfg.salt]) == 2  # too short to be a PIN


def test_a_hash_without_a_salt_is_a_config_error(tmp_path: Path) -> None:
    from config import ConfigError

    with pytest.raises(ConfigError, match="salt"):
        load_config(environ={"KIOSK__MAINTENANCE__PIN_HASH": make_hash("pin", PIN, "", ITER)})
    with pytest.raises(ConfigError, match="technician_cards"):
        load_config(environ={"KIOSK__MAINTENANCE__SALT": SALT, "KIOSK__MAINTENANCE__TECHNICIAN_CARDS": '["1234"]'})
    with pytest.raises(ConfigError, match="pin_hash"):
        load_config(environ={"KIOSK__MAINTENANCE__SALT": SALT, "KIOSK__MAINTENANCE__PIN_HASH": "246810"})


def test_wrong_pin_is_refused_and_audited_then_the_right_one_opens(tmp_path: Path) -> None:
    m, audit, views = make(tmp_path)
    assert m.request("en") and m.state is MaintenanceState.ASKING and m.active
    m.press_digit("1")
    m.press_digit("2")
    assert views[-1].pin_length == 2 and views[-1].language == "en" and views[-1].cards_enabled
    m.clear_pin()
    assert views[-1].pin_length == 0
    type_pin(m, "135790")
    assert m.state is MaintenanceState.ASKING
    assert views[-1].message_key == "maintenance.pin_wrong" and views[-1].message_values == {"left": "2"}
    assert any(v.checking for v in views)  # the pad said "checking" while the hash ran
    type_pin(m, PIN)
    assert m.state is MaintenanceState.OPEN and views[-1].who == "pin" and views[-1].page == "devices"
    m.close()
    assert m.state is MaintenanceState.LOCKED and not m.active
    got = [(e["who"], e["action"], e["outcome"]) for e in lines(audit)]
    assert got == [("", "request", "pin_pad"), ("pin", "login", "wrong_pin"), ("pin", "login", "ok"),
                   ("pin", "close", "closed")]
    assert all(e["terminal"] == "ZJ-TEST-0007" and e["time"].endswith("Z") for e in lines(audit))


def test_lockout_after_max_failures_survives_a_restart_and_ends(tmp_path: Path) -> None:
    clock = Clock()
    m, audit, views = make(tmp_path, clock=clock)
    m.request()
    for _ in range(3):
        type_pin(m, "000000")
    assert views[-1].message_key == "maintenance.locked_out" and views[-1].locked_out
    assert m.enter_pin(PIN) is False  # even the right PIN, while locked out
    m.cancel()
    assert [e["outcome"] for e in lines(audit) if e["action"] == "login"] == ["wrong_pin"] * 3 + ["refused_locked_out"]
    lockout = audit.last("lockout")
    assert lockout is not None and lockout["minutes"] == 10 and lockout["until"].endswith("Z")

    again, _, views = make(tmp_path, clock=clock)  # the terminal restarted: still locked out
    again.request()
    assert views[-1].locked_out and views[-1].message_values == {"minutes": "10"}
    again.press_digit("1")
    assert views[-1].pin_length == 0  # the keys do nothing meanwhile
    assert again.technician_card(IdentityCard("resident", id_number=TECHNICIAN_ID)) is False
    clock.now += 10 * 60 + 1
    again.tick()
    assert views[-1].reason == "lockout_over" and not views[-1].locked_out and views[-1].message_key is None
    assert again.enter_pin(PIN) is True


def test_the_pad_and_the_open_screen_close_themselves(tmp_path: Path) -> None:
    clock = Clock()
    m, audit, _ = make(tmp_path, clock=clock)
    m.request()
    clock.now += 59
    m.tick()
    assert m.state is MaintenanceState.ASKING
    clock.now += 1
    m.tick()
    assert m.state is MaintenanceState.LOCKED
    m.request()
    assert m.enter_pin(PIN)
    clock.now += 4 * 60
    m.touch()  # the technician is still there
    clock.now += 4 * 60 + 59
    m.tick()
    assert m.state is MaintenanceState.OPEN
    clock.now += 1
    m.tick()
    assert m.state is MaintenanceState.LOCKED
    assert [(e["action"], e["outcome"]) for e in lines(audit)][-1] == ("close", "idle")
    assert ("cancel", "timeout") in [(e["action"], e["outcome"]) for e in lines(audit)]


def test_only_from_the_attract_screen_and_only_with_a_credential(tmp_path: Path) -> None:
    visiting = [True]
    m, audit, _ = make(tmp_path, may_open=lambda: not visiting[0])
    assert m.request() is False and m.state is MaintenanceState.LOCKED
    visiting[0] = False
    assert m.request() is True
    with pytest.raises(NotNow):
        m.self_test()  # not open yet
    none, _, _ = make(tmp_path / "b", cfg=section(pin_hash="", technician_cards="[]"))
    assert none.request() is False
    assert [e["outcome"] for e in lines(audit)] == ["refused_visit", "pin_pad"]


def test_a_technician_card_opens_a_citizens_card_is_refused_wiped_and_not_written(tmp_path: Path) -> None:
    m, audit, views = make(tmp_path)
    m.request()
    card = citizen_card()
    assert m.technician_card(card) is False
    assert card.name == "" and card.id_number == "" and card.address == ""  # wiped at once
    assert views[-1].message_key == "maintenance.card_refused" and m.state is MaintenanceState.ASKING
    m.technician_card(None)  # a card that could not be read: said, not counted
    assert views[-1].message_key == "maintenance.card_unreadable"
    technician = IdentityCard("resident", name="李工", id_number=TECHNICIAN_ID)
    assert m.technician_card(technician) is True and technician.id_number == ""
    assert m.state is MaintenanceState.OPEN and views[-1].who == "card:110101********0016"
    m.close()
    text = audit.path.read_text(encoding="utf-8")
    for secret in (*CITIZEN.values(), "1101011990", "1234", TECHNICIAN_ID, "李工"):
        assert secret not in text, secret
    logins = [(e["who"], e["outcome"], e.get("failures")) for e in lines(audit) if e["action"] == "login"]
    assert logins == [("card", "not_technician_card", 1), ("card:110101********0016", "ok", None)]


def test_the_audit_log_is_owner_only_synced_json_lines(tmp_path: Path) -> None:
    audit = AuditLog(tmp_path / "var" / "audit" / "maintenance.jsonl", "T-1")
    audit.record("pin", "restart", "offline", device="idcard", fault="no reply from 13800138000 / 110101199003071234")
    audit.record("", "request", "pin_pad")
    assert stat.S_IMODE(os.stat(audit.path).st_mode) == 0o600
    assert stat.S_IMODE(os.stat(audit.path.parent).st_mode) == 0o700
    first, second = (json.loads(line) for line in audit.path.read_text(encoding="utf-8").splitlines())
    assert first["fault"] == "no reply from 138****8000 / 110101********1234"  # masked once more
    assert set(second) == {"time", "terminal", "who", "action", "outcome"}
    with audit.path.open("a") as fh:
        fh.write('{"cut by a power lo')  # a torn last line is skipped, the log still reads
    assert [e["action"] for e in audit.entries()] == ["restart", "request"]


# -- actions on a real emulated receipt printer --------------------------------------------------------
@pytest.fixture
def printer(tmp_path: Path) -> Iterator[tuple[EscPosEmulator, EscPosSerialPrinter]]:
    emu = EscPosEmulator(link=str(tmp_path / "dev" / "printer"), render=False)
    port = emu.start()
    device = EscPosSerialPrinter("receipt_printer", port=port, status_timeout_s=0.5, **EscPosEmulator.DRIVER_DEFAULTS)
    device.open()
    yield emu, device
    device.close()
    emu.stop()


class BrokenReader:
    """A driver whose self-test raises (a driver bug): a failed row, never a crash."""

    device_class = "idcard"
    name = "idcard"

    def status(self) -> Any:
        from devices.base import DeviceStatus

        return DeviceStatus(DeviceState.OFFLINE, MediaState.UNKNOWN, "no answer on /dev/ttyUSB0")

    def self_test(self) -> list[SelfTestResult]:
        raise OSError("port vanished")


def test_actions_on_an_emulated_printer_are_done_and_audited(tmp_path: Path, printer) -> None:
    emu, device = printer
    from kiosk.outbox import Outbox

    outbox = Outbox(tmp_path / "outbox" / "outbox.db", tmp_path / "keys" / "outbox.key", "ZJ-TEST-0007")
    outbox.enqueue("application", {"name": CITIZEN["name"]}, "key-1")
    devices = {"receipt_printer": device, "idcard": BrokenReader()}
    m, audit, views = make(tmp_path, devices, receipt_printer="receipt_printer", outbox_counts=outbox.counts,
                           location="测试网点")
    m.request()
    assert m.enter_pin(PIN)
    rows = {r.name: r for r in views[-1].devices}
    assert rows["receipt_printer"].ok and rows["receipt_printer"].media == "present"
    assert not rows["idcard"].ok and "ttyUSB0" in rows["idcard"].fault

    m.self_test()
    done = views[-1]
    assert done.reason == "self_test_done" and done.message_key == "maintenance.self_test_failed"
    assert done.page == "checks" and done.task is None
    assert {c.name: c.passed for c in done.checks} == {"receipt_printer": True, "idcard": False}
    assert any("port vanished" in detail for _n, ok, detail in done.checks[1].results if not ok)
    assert [(n, w) for n, w in (p for v in views for p in v.progress)][:1] == [("receipt_printer", "self-test")]
    assert emu.receipts(timeout=0.5) == []  # a self-test prints nothing

    m.test_print()
    assert views[-1].message_key == "maintenance.printed" and views[-1].checks[0].printed is True
    receipt = emu.receipts()
    assert len(receipt) == 1 and "ZJ-TEST-0007" in receipt[0].text and "测试网点" in receipt[0].text

    m.restart("receipt_printer")  # no supervisor here: closed and opened again
    assert views[-1].message_key == "maintenance.restarted" and device.status().device is DeviceState.ONLINE

    m.show_outbox()
    assert dict(views[-1].outbox or ()) == {"pending": 1, "delivered": 0, "rejected": 0}
    emu.paper_out()
    m.test_print()
    assert views[-1].message_key == "maintenance.not_printed"
    m.show_devices()
    assert {r.name: r.media for r in views[-1].devices}["receipt_printer"] == "out"
    m.close()
    outbox.close()

    got = [(e["action"], e["outcome"]) for e in lines(audit)]
    assert got == [("request", "pin_pad"), ("login", "ok"), ("self_test", "failed"), ("test_print", "printed"),
                   ("restart", "online"), ("outbox", "shown"), ("test_print", "not_printed"), ("status", "shown"),
                   ("close", "closed")]
    entries = {(e["action"], e["outcome"]): e for e in lines(audit)}
    assert entries[("self_test", "failed")]["failed"] == ["idcard"]
    assert entries[("outbox", "shown")]["counts"] == {"pending": 1, "delivered": 0, "rejected": 0}
    assert "paper" in entries[("test_print", "not_printed")]["fault"].lower()
    assert entries[("status", "shown")]["faulty"] == ["receipt_printer", "idcard"]
    assert CITIZEN["name"] not in audit.path.read_text(encoding="utf-8")


def test_one_action_at_a_time_and_a_stale_worker_writes_nothing(tmp_path: Path) -> None:
    later: list[Any] = []
    audit = AuditLog(tmp_path / "audit.jsonl", "T-1")

    def checker(devices: Any, **_kwargs: Any) -> list[Any]:
        return []

    m = Maintenance(section(), {}, audit, clock=Clock(), checker=checker, run=lambda work, _n: later.append(work))
    m.request()
    assert m.enter_pin(PIN)
    m.self_test()
    assert m.view().task == "self_test"
    with pytest.raises(NotNow):
        m.self_test()
    assert m.view().message_key == "maintenance.busy"
    m.close()
    later.pop()()  # the checks finish after the technician left
    assert m.view().checks == () and m.view().task is None and m.state is MaintenanceState.LOCKED


# -- the terminal routes cards while the PIN pad is up -------------------------------------------------
def test_the_terminal_gives_cards_to_the_maintenance_never_to_the_visit(tmp_path: Path) -> None:
    from kiosk.terminal import Terminal
    from kiosk.view import Step

    cfg = load_config(environ={"KIOSK__PLATFORM__URL": "", "KIOSK__FACE__ENABLED": "false",
                               "KIOSK__TERMINAL__DATA_DIR": str(tmp_path / "var"),
                               "KIOSK__MAINTENANCE__SALT": SALT,
                               "KIOSK__MAINTENANCE__PIN_HASH": make_hash("pin", PIN, SALT, ITER),
                               "KIOSK__MAINTENANCE__TECHNICIAN_CARDS":
                                   json.dumps([make_hash("card", TECHNICIAN_ID, SALT, ITER)])})
    t = Terminal(cfg)
    m = t.maintenance
    assert m.audit.path == tmp_path / "var" / "audit" / "maintenance.jsonl"
    t.visit.start()
    assert m.request() is False  # a citizen's visit: no maintenance
    t.visit.cancel()
    assert m.request() is True

    card = citizen_card()
    t._on_device_event(DeviceEvent("idcard", "card_placed", {"identity": card}))
    assert t.visit.step is Step.ATTRACT and not t.visit.card_present  # the visit did not start
    assert card.id_number == "" and m.state is MaintenanceState.ASKING
    t._on_device_event(DeviceEvent("idcard", "card_removed", {}))
    t._on_device_event(DeviceEvent("qr_scanner", "code_scanned", {"text": "YY1234567890123"}))
    assert t.visit.step is Step.ATTRACT  # no check-in behind the technician's back

    t._on_device_event(DeviceEvent("smartcard", "card_placed", {"identity": IdentityCard("resident",
                                                                                          id_number=TECHNICIAN_ID)}))
    assert m.state is MaintenanceState.OPEN and t.visit.step is Step.ATTRACT
    t.stop()  # the open session is closed and audited
    assert m.state is MaintenanceState.LOCKED
    assert [e["outcome"] for e in m.audit.entries()][-1] == "shutdown"

    t._on_device_event(DeviceEvent("idcard", "card_placed", {"identity": citizen_card()}))
    assert t.visit.step is not Step.ATTRACT  # maintenance closed: a card starts a visit again


def test_a_restart_under_the_supervisor_waits_for_it_to_reopen_the_device(tmp_path: Path) -> None:
    from devices.supervisor import Supervisor

    emu = EscPosEmulator(link=str(tmp_path / "dev" / "printer"), render=False)
    port = emu.start()
    device = EscPosSerialPrinter("receipt_printer", port=port, status_timeout_s=0.5, **EscPosEmulator.DRIVER_DEFAULTS)
    supervisor = Supervisor([device], interval=0.05)
    supervisor.start()
    try:
        m, audit, views = make(tmp_path, {"receipt_printer": device})
        m.reopen_by_supervisor = True  # as the terminal sets it: the maintenance never opens a port itself
        m.request()
        assert m.enter_pin(PIN)
        m.restart("receipt_printer")
        assert views[-1].message_key == "maintenance.restarted", views[-1].message_values
        assert device.status().device is DeviceState.ONLINE
        assert audit.last("restart") is not None and audit.last("restart")["outcome"] == "online"
    finally:
        supervisor.stop()
        emu.stop()
