"""`python -m provisioning reset`: back to the factory state, never losing a citizen's submission
silently. A real outbox with real rows (two waiting, one delivered), a running kiosk (its pid
file, or a process holding the outbox open), the export that must open before anything goes."""
from __future__ import annotations

import json
import os
import sqlite3
import stat
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

from kiosk.outbox import Outbox, OutboxUnreadable
from provisioning.__main__ import main

ROOT = Path(__file__).resolve().parent.parent
TERMINAL = "ZJ-TEST-0042"
PAYLOAD = {"citizen": {"id_number": "110101199003070011", "name": "张三丰"}, "answers": {"addr": "测试路1号"}}


def make_terminal(tmp_path: Path, *, undelivered: bool = True) -> tuple[Path, Path]:
    """A used terminal: key pair, outbox (two waiting, one delivered), cache, logs, run links, demo data."""
    data = tmp_path / "data"
    (data / "keys").mkdir(parents=True, mode=0o700)
    (data / "keys" / "terminal.key").write_text("-----BEGIN PRIVATE KEY-----\nsynthetic\n")
    box = Outbox(data / "outbox" / "outbox.db", data / "keys" / "outbox.key", TERMINAL)
    delivered = box.enqueue("application", PAYLOAD, "a" * 32)
    box.mark_delivered(delivered, "SQ-1")
    if undelivered:
        box.enqueue("application", PAYLOAD, "b" * 32, attachments=[("image/jpeg", b"\xff\xd8scan")])
        rejected = box.enqueue("rating", {"level": 5}, "c" * 32)
        box.mark_failed(rejected, "400 bad rating", None)
    box.close()
    for rel in ("cache/catalogue.json", "log/kiosk.log", "log/kiosk.log.1", "run/idcard.tty", "demo/terminal/x"):
        (data / rel).parent.mkdir(parents=True, exist_ok=True)
        (data / rel).write_text("x")
    config = tmp_path / "terminal.toml"
    config.write_text(f'[terminal]\nid = "{TERMINAL}"\nlocation = "测试网点"\ndata_dir = "{data}"\n', encoding="utf-8")
    return data, config


def cli(*args: str) -> int:
    return main(["reset", *args])


def run(*args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("KIOSK")}
    return subprocess.run([sys.executable, "-m", "provisioning", "reset", *args], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=120)


@pytest.fixture(autouse=True)
def _no_kiosk_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.startswith("KIOSK"):
            monkeypatch.delenv(name)


def files(folder: Path) -> set[str]:
    return {p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file()}


def test_undelivered_submissions_refuse_the_reset_and_say_the_ways_forward(tmp_path: Path) -> None:
    data, config = make_terminal(tmp_path)
    before = files(data)
    done = run("--config", str(config), "--yes")
    assert done.returncode == 4, done.stdout + done.stderr
    assert "2 submission(s) that were not delivered" in done.stderr
    assert "pending: 1 application" in done.stderr and "rejected: 1 rating" in done.stderr
    assert "--export-undelivered FILE" in done.stderr and "--discard-undelivered 2" in done.stderr
    assert "start the kiosk with network" in done.stderr and "Traceback" not in done.stderr
    assert files(data) == before  # nothing touched


def test_export_is_checked_then_everything_goes(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    data, config = make_terminal(tmp_path)
    archive = tmp_path / "usb" / "outbox-export.tar.gz"
    archive.parent.mkdir()
    # without --yes: listed, nothing exported or removed
    assert cli("--config", str(config), "--export-undelivered", str(archive)) == 2
    out, err = capsys.readouterr()
    assert "run again with --yes" in err and str(data / "keys" / "terminal.key") in out
    assert "after exporting 2 undelivered" in out and not archive.exists()
    assert (data / "keys" / "terminal.key").exists()

    assert cli("--config", str(config), "--yes", "--export-undelivered", str(archive)) == 0
    out, _ = capsys.readouterr()
    assert "exported 2 undelivered submission(s)" in out and "terminal.key" in out
    assert files(data) == {"reset-history.jsonl"}  # keys, outbox, cache, logs, run, demo: all gone
    assert config.exists()  # the terminal's own file is kept
    assert stat.S_IMODE(archive.stat().st_mode) == 0o600
    # the export can be delivered later: the outbox opens with its key and the payload decrypts
    with tarfile.open(archive) as tar:
        tar.extractall(tmp_path / "later", filter="data")
    box = Outbox(tmp_path / "later" / "outbox" / "outbox.db", tmp_path / "later" / "keys" / "outbox.key", TERMINAL)
    try:
        assert box.counts() == {"pending": 1, "delivered": 1, "rejected": 1}
        [waiting] = box.due()
        assert box.payload(waiting) == PAYLOAD and box.attachments(waiting)[0].data == b"\xff\xd8scan"
    finally:
        box.close()
    record = json.loads((data / "reset-history.jsonl").read_text())
    assert record["exported_to"] == str(archive) and record["undelivered"] == {"application": 1, "rating": 1}


def test_a_row_set_aside_as_unreadable_is_exported_as_it_is(tmp_path: Path,
                                                         capsys: pytest.CaptureFixture[str]) -> None:
    """A row the kiosk set aside (it no longer opens) does not stop the export of the others: it
    travels sealed, as it is, for whoever finds the key that opens it."""
    data, config = make_terminal(tmp_path)
    box = Outbox(data / "outbox" / "outbox.db", data / "keys" / "outbox.key", TERMINAL)
    damaged = box.enqueue("application", PAYLOAD, "d" * 32)
    box.set_aside(damaged, "the sealed payload does not open")
    box.close()
    db = sqlite3.connect(data / "outbox" / "outbox.db")
    with db:  # what a damaged disk leaves: bytes that no longer open
        db.execute("UPDATE outbox SET payload = ? WHERE id = ?", (b"\x00" * 64, damaged.id))
    db.close()
    archive = tmp_path / "outbox-export.tar.gz"
    assert cli("--config", str(config), "--yes", "--export-undelivered", str(archive)) == 0
    out, err = capsys.readouterr()
    assert "exported 3 undelivered submission(s)" in out, out + err
    with tarfile.open(archive) as tar:
        tar.extractall(tmp_path / "later", filter="data")
    box = Outbox(tmp_path / "later" / "outbox" / "outbox.db", tmp_path / "later" / "keys" / "outbox.key", TERMINAL)
    try:
        assert box.counts()["unreadable"] == 1 and box.payload(box.due()[0]) == PAYLOAD
        with pytest.raises(OutboxUnreadable):
            box.payload(box.get(damaged.id))
    finally:
        box.close()


def test_discard_needs_the_exact_count_and_keep_keys_keeps_the_enrolment(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    data, config = make_terminal(tmp_path)
    assert cli("--config", str(config), "--yes", "--discard-undelivered", "1") == 4
    assert "does not match: the outbox holds 2" in capsys.readouterr().err
    assert (data / "outbox" / "outbox.db").exists()
    assert cli("--config", str(config), "--yes", "--keep-keys", "--discard-undelivered", "2") == 0
    out, err = capsys.readouterr()
    assert "discarding 2 undelivered" in err and "kept:" in out
    assert files(data) == {"keys/terminal.key", "reset-history.jsonl"}
    assert json.loads((data / "reset-history.jsonl").read_text())["discarded"] == 2
    assert cli("--config", str(config), "--yes", "--keep-keys") == 0  # again: nothing left to remove
    assert "factory state" in capsys.readouterr().out


def test_a_running_kiosk_is_exit_3(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    data, config = make_terminal(tmp_path, undelivered=False)
    before = files(data)
    with (data / "outbox" / "outbox.db").open("rb") as db:  # a process holding the outbox open
        holder = subprocess.Popen(["sleep", "60"], stdin=db)
    try:
        assert cli("--config", str(config), "--yes") == 3
        assert f"process {holder.pid}" in capsys.readouterr().err
    finally:
        holder.kill()
        holder.wait()
    (data / "run" / "kiosk.pid").write_text(f"{os.getppid()}\n")  # a live process named in the pid file
    assert cli("--config", str(config), "--yes") == 3
    assert "the kiosk is running" in capsys.readouterr().err
    assert files(data) == before | {"run/kiosk.pid"}
    (data / "run" / "kiosk.pid").write_text("999999999\n")  # a stale pid file does not block
    assert cli("--config", str(config), "--yes") == 0
    assert files(data) == {"reset-history.jsonl"}
