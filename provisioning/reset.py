"""reset: bring the terminal back to its factory state, without losing a citizen's submission.

Removes what the terminal wrote in terminal.data_dir: its key pair (platform.key_file;
kept with --keep-keys), the outbox database and its key (platform.outbox_key_file), the
catalogue cache, the logs, voice output, the emulators' output and demo data. Key files
and the outbox are overwritten before they are unlinked (where the disk allows: on flash
storage a copy may survive in the controller). The terminal's own configuration file is
kept unless --config-too. The maintenance audit log and the reset record
(reset-history.jsonl) are kept: they say who did what on this terminal.

Safety:
  - without --yes nothing is touched: the command lists what it would remove;
  - while the kiosk runs (its pid file, or a process holding the outbox or the log open)
    nothing is touched;
  - while the outbox holds submissions that were not delivered, nothing is touched unless
    they are exported (--export-undelivered FILE: the database and its key in one owner-only
    archive, opened and checked before anything is removed) or knowingly discarded
    (--discard-undelivered N, N being their number: a typed confirmation, recorded).
"""
from __future__ import annotations

import argparse
import datetime as dt
import io
import json
import logging
import os
import shutil
import sqlite3
import stat
import sys
import tarfile
import tempfile
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from provisioning.console import EXIT_INTERNAL, EXIT_OK, Failure, guarded, load_config_or_fail

NAME = "reset"
SUMMARY = "back to factory state: keys, outbox, caches, logs removed (refuses while submissions wait)"
EXAMPLE = "python -m provisioning reset   (lists)   |   reset --yes   |   reset --yes --export-undelivered /media/usb/outbox.tar.gz"

EXIT_USAGE = 2  # also: without --yes (only listed), and argparse's code for a bad argument
EXIT_RUNNING = 3  # the kiosk is running
EXIT_UNDELIVERED = 4  # undelivered submissions: export or discard them knowingly

HISTORY = "reset-history.jsonl"  # in terminal.data_dir; kept by every reset
ROOT = Path(__file__).resolve().parent.parent

log = logging.getLogger("provisioning.reset")


@dataclass(frozen=True)
class Target:
    path: Path
    what: str
    overwrite: bool = False  # secret material: overwritten before it is unlinked


# -- what a reset removes -------------------------------------------------------------------------------
def _inside(path: Path, folder: Path) -> bool:
    try:
        path.resolve().relative_to(folder.resolve())
    except ValueError:
        return False
    return path.resolve() != folder.resolve()


def _exists(path: Path) -> bool:
    return path.is_symlink() or path.exists()


def plan(cfg: Any, paths: Any, *, keep_keys: bool, config_file: Path | None) -> tuple[list[Target], list[str]]:
    """What would be removed (existing paths only) and what is left alone, with the reason."""
    from kiosk.device_setup import ROOT as KIOSK_ROOT

    data = paths.data_dir
    targets: list[Target] = []
    kept: list[str] = []

    def add(path: Path, what: str, overwrite: bool = False) -> None:
        if _exists(path) and all(t.path != path for t in targets):
            targets.append(Target(path, what, overwrite))

    def add_folder(path: Path, what: str) -> None:
        """A folder the terminal fills: removed only when inside data_dir (never a folder of the system)."""
        if not _exists(path):
            return
        if _inside(path, data) or path.is_symlink():
            add(path, what)
        else:
            kept.append(f"{path} ({what}): outside terminal.data_dir, remove it by hand if it is the terminal's")

    if keep_keys:
        if _exists(paths.key_file):
            kept.append(f"{paths.key_file} (the terminal's key pair: --keep-keys; the enrolment stays valid)")
    else:
        add(paths.key_file, "the terminal's key pair (enrol again afterwards)", overwrite=True)
    for f in paths.outbox_files:
        add(f, "the outbox database" if f == paths.outbox_db else "the outbox database's journal", overwrite=True)
    add(paths.outbox_key_file, "the outbox's encryption key", overwrite=True)
    add_folder(paths.cache_dir, "cached catalogue")
    for log_path in [paths.log_file] + sorted(paths.log_file.parent.glob(paths.log_file.name + ".*")):
        add(log_path, "log")
    add_folder(paths.run_dir, "run-time links and pid file")
    add_folder(data / "demo", "demo data")
    if cfg.voice.output_dir:
        voice = Path(cfg.voice.output_dir)
        add_folder(voice if voice.is_absolute() else KIOSK_ROOT / voice, "voice output (WAV files)")
    for name, dev in cfg.devices.items():
        for option in ("out_dir", "directory"):
            value = dev.emulator.get(option)
            if isinstance(value, str) and value:
                folder = Path(value) if Path(value).is_absolute() else KIOSK_ROOT / value
                add_folder(folder, f"the {name} emulator's output")
    if config_file is not None:
        add(config_file, "the terminal's own configuration file (--config-too)")
    audit = getattr(getattr(cfg, "maintenance", None), "audit_file", "")
    if audit and _exists(paths.inside(audit)):
        kept.append(f"{paths.inside(audit)} (the maintenance audit log: who did what on this terminal)")
    # a folder inside another target is removed with it: list the outer one only
    targets = [t for t in targets if not any(o is not t and _inside(t.path, o.path) and o.path.is_dir()
                                             for o in targets)]
    return targets, kept


# -- removing -----------------------------------------------------------------------------------------------
def _overwrite(path: Path) -> str:
    """Overwrite a regular file's bytes with random data and flush them to disk; '' or why not."""
    try:
        st = path.lstat()
        if not stat.S_ISREG(st.st_mode):
            return "not a regular file"
        with path.open("r+b", buffering=0) as fh:
            left = st.st_size
            while left > 0:
                n = min(left, 1 << 20)
                fh.write(os.urandom(n))
                left -= n
            os.fsync(fh.fileno())
    except OSError as exc:
        return f"not overwritten: {exc.strerror or exc}"
    return ""


def remove(target: Target) -> str:
    """Remove one target (a symlink itself, never what it points to); returns a note."""
    path = target.path
    if path.is_symlink() or not path.is_dir():
        note = _overwrite(path) if target.overwrite and not path.is_symlink() else ""
        path.unlink()
        return f" ({note})" if note else (" (overwritten)" if target.overwrite else "")
    shutil.rmtree(path)
    return ""


def _tidy(folders: Iterable[Path], data_dir: Path) -> None:
    """Remove folders left empty inside data_dir (keys/, outbox/, log/)."""
    for folder in sorted(set(folders), key=lambda p: len(p.parts), reverse=True):
        if _inside(folder, data_dir):
            try:
                folder.rmdir()
            except OSError:
                pass


# -- undelivered submissions ----------------------------------------------------------------------------------
def describe_backlog(counts: dict[str, dict[str, int]]) -> list[str]:
    lines = []
    for state, kinds in sorted(counts.items()):
        if state == "delivered":
            continue
        why = {"pending": "waiting for the network: delivered when the kiosk runs with network",
               "rejected": "refused by the platform (kept for the help desk)",
               "unreadable": ("set aside: they no longer open with the outbox key (an export keeps their "
                              "sealed bytes; the original key may still open them)")}.get(state, "not delivered")
        lines.append(f"  {state}: " + ", ".join(f"{n} {kind}" for kind, n in sorted(kinds.items())) + f" — {why}")
    return lines


def export_undelivered(paths: Any, archive: Path, terminal_id: str, counts: dict[str, dict[str, int]]) -> None:
    """Write the outbox database (a consistent copy) and its key into one owner-only archive,
    then open the archive again and prove every undelivered entry can be decrypted. Raises
    Failure (nothing removed) when any of it fails."""
    from kiosk.device_setup import undelivered

    expected = sum(undelivered(counts).values())
    work = Path(tempfile.mkdtemp(prefix="kiosk-reset-"))
    try:
        copy = work / "outbox.db"
        try:
            src = sqlite3.connect(paths.outbox_db, timeout=5)
            dst = sqlite3.connect(copy)
            with dst:
                src.backup(dst)
            dst.execute("PRAGMA journal_mode=DELETE")  # one file, no write-ahead log beside it
            src.close()
            dst.close()
        except sqlite3.Error as exc:
            raise Failure(EXIT_UNDELIVERED, f"cannot copy the outbox ({exc}); nothing was removed") from None
        try:
            key = paths.outbox_key_file.read_bytes()
        except OSError as exc:
            raise Failure(EXIT_UNDELIVERED, f"cannot read the outbox key {paths.outbox_key_file} ({exc.strerror}): "
                                            "without it the submissions cannot be decrypted; nothing was removed") from None
        manifest = {
            "terminal_id": terminal_id,
            "exported_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
            "counts": counts,
            "undelivered": expected,
            "files": {"outbox/outbox.db": "the outbox database (SQLite)", "keys/outbox.key": "its SM4 key"},
            "deliver": ("put outbox/outbox.db at the terminal's platform.outbox_db and keys/outbox.key at "
                        "platform.outbox_key_file (in another folder), then start the kiosk with network; "
                        "or give this archive to the help desk. It holds personal data, encrypted: keep it "
                        "owner-only and delete it once delivered."),
        }
        fd = os.open(archive, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            with os.fdopen(fd, "wb") as raw, tarfile.open(fileobj=raw, mode="w:gz") as tar:
                for name, data in (("outbox/outbox.db", copy.read_bytes()), ("keys/outbox.key", key),
                                   ("MANIFEST.json", json.dumps(manifest, ensure_ascii=False, indent=2).encode())):
                    info = tarfile.TarInfo(name)
                    info.size, info.mode, info.mtime = len(data), 0o600, int(dt.datetime.now().timestamp())
                    tar.addfile(info, io.BytesIO(data))
                os.fsync(raw.fileno())
            _verify_export(archive, work / "check", terminal_id, expected)
        except BaseException:
            archive.unlink(missing_ok=True)
            raise
    finally:
        for f in work.rglob("*"):
            if f.is_file():
                _overwrite(f)
        shutil.rmtree(work, ignore_errors=True)


def _verify_export(archive: Path, into: Path, terminal_id: str, expected: int) -> None:
    from kiosk.outbox import UNREADABLE, Outbox

    try:
        with tarfile.open(archive, "r:gz") as tar:
            names = set(tar.getnames())
            if not {"outbox/outbox.db", "keys/outbox.key"} <= names:
                raise Failure(EXIT_UNDELIVERED, f"the export {archive} lacks files; nothing was removed")
            into.mkdir(mode=0o700)
            tar.extractall(into, members=[tar.getmember("outbox/outbox.db"), tar.getmember("keys/outbox.key")],
                           filter="data")
        db = sqlite3.connect(into / "outbox" / "outbox.db")
        try:
            rows = db.execute("SELECT id, state FROM outbox WHERE state != 'delivered'").fetchall()
        finally:
            db.close()
        box = Outbox(into / "outbox" / "outbox.db", into / "keys" / "outbox.key", terminal_id)
        try:
            for row_id, state in rows:
                if state == UNREADABLE:  # it did not open on the kiosk either: exported as it is
                    continue
                entry = box.get(row_id)
                box.payload(entry)  # decrypts with the exported key, or raises
                box.attachments(entry)
        finally:
            box.close()
    except Failure:
        raise
    except Exception as exc:
        raise Failure(EXIT_UNDELIVERED, f"the export {archive} could not be opened and checked "
                                        f"({type(exc).__name__}: {exc}); it was deleted and nothing was removed") from None
    if len(rows) != expected:
        raise Failure(EXIT_UNDELIVERED, f"the export holds {len(rows)} undelivered entries, not {expected}; "
                                        "nothing was removed")


# -- the command ------------------------------------------------------------------------------------------------
def _count(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"{text}: give the number of undelivered entries")
    return value


def register(subparsers: Any) -> None:
    """Add the reset subcommand to `python -m provisioning`."""
    parser = subparsers.add_parser(
        NAME, help=SUMMARY, description=__doc__,
        epilog="""examples:
  python -m provisioning reset                                 list what would be removed (nothing is)
  python -m provisioning reset --yes                           remove it
  python -m provisioning reset --yes --keep-keys               keep the enrolment key pair
  python -m provisioning reset --yes --export-undelivered /media/usb/outbox-KIOSK-0042.tar.gz
  python -m provisioning reset --yes --discard-undelivered 3   3 = the number of undelivered entries

exit codes:
  0  reset done (or nothing to remove)
  2  only listed (run again with --yes), or bad arguments or configuration
  3  the kiosk is running: stop it first
  4  the outbox holds undelivered submissions (the message says how many and the ways forward),
     or the export could not be checked: nothing was removed
  1  internal error (run with --verbose and report it)""",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", help="the terminal's configuration file (default: as the kiosk finds it)")
    parser.add_argument("--yes", action="store_true", help="really remove (without it: only list)")
    parser.add_argument("--keep-keys", action="store_true",
                        help="keep the terminal's key pair (platform.key_file), so it need not be enrolled again")
    parser.add_argument("--config-too", action="store_true", help="also remove the terminal's own configuration file")
    parser.add_argument("--export-undelivered", metavar="FILE",
                        help="first save undelivered submissions (outbox database and key) to this new owner-only archive")
    parser.add_argument("--discard-undelivered", type=_count, metavar="COUNT",
                        help="destroy the undelivered submissions; COUNT must be their number (a confirmation)")
    parser.add_argument("-v", "--verbose", action="store_true", help="log the steps on stderr")
    parser.set_defaults(run=run)


def _record(data_dir: Path, entry: dict[str, Any]) -> None:
    """Append one line to the reset record (owner-only), kept across resets."""
    data_dir.mkdir(parents=True, exist_ok=True)
    fd = os.open(data_dir / HISTORY, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    with os.fdopen(fd, "a", encoding="utf-8") as fh:
        fh.write(json.dumps(entry, ensure_ascii=False) + "\n")


@guarded(NAME)
def run(args: argparse.Namespace) -> int:
    from config.loader import find_terminal_file
    from kiosk.device_setup import (
        OutboxUnreadable,
        outbox_counts,
        running_kiosk,
        terminal_paths,
        undelivered,
    )

    if args.export_undelivered and args.discard_undelivered is not None:
        raise Failure(EXIT_USAGE, "give either --export-undelivered or --discard-undelivered, not both")
    cfg = load_config_or_fail(args.config, EXIT_USAGE)
    paths = terminal_paths(cfg)
    data = paths.data_dir
    if data.resolve() in (Path("/"), Path.home().resolve(), ROOT.resolve()):
        raise Failure(EXIT_USAGE, f"terminal.data_dir is {data}: refusing to reset a folder that is not "
                                  "the terminal's own")
    export = Path(args.export_undelivered).expanduser().absolute() if args.export_undelivered else None
    config_file = find_terminal_file(args.config, os.environ) if args.config_too else None
    if args.config_too and config_file is None:
        raise Failure(EXIT_USAGE, "--config-too: this terminal has no configuration file of its own")
    targets, kept = plan(cfg, paths, keep_keys=args.keep_keys, config_file=config_file)
    if export is not None:
        if _exists(export):
            raise Failure(EXIT_USAGE, f"--export-undelivered {export}: the file exists; give a new file name")
        if not export.parent.is_dir():
            raise Failure(EXIT_USAGE, f"--export-undelivered {export}: the folder {export.parent} does not exist")
        if any(export == t.path or _inside(export, t.path) for t in targets):
            raise Failure(EXIT_USAGE, f"--export-undelivered {export}: that is inside what the reset removes; "
                                      "write it elsewhere (a USB stick)")

    kiosk = running_kiosk(paths)
    if kiosk:
        raise Failure(EXIT_RUNNING, f"the kiosk is running ({', '.join(h.describe() for h in kiosk)}): stop it "
                                    "first (systemctl stop kiosk-retry.service kiosk.service), then run the reset "
                                    "again; nothing was removed")

    try:
        counts = outbox_counts(paths.outbox_db)
    except OutboxUnreadable as exc:
        raise Failure(EXIT_UNDELIVERED, f"{exc}: it may hold undelivered submissions, so nothing was removed. "
                                        f"Copy {paths.outbox_db.parent} and {paths.outbox_key_file} aside and "
                                        "ask the help desk") from None
    waiting = undelivered(counts)
    total = sum(waiting.values())
    if total and export is None and args.discard_undelivered is None:
        lines = [f"the outbox ({paths.outbox_db}) holds {total} submission(s) that were not delivered:",
                 *describe_backlog(counts),
                 "Nothing was removed. Ways forward:",
                 ("  1. start the kiosk with network and let it deliver the pending ones (the help desk sees the "
                  "backlog), then reset;" if counts.get("pending") else
                  "  1. rejected ones are never sent again: let the help desk deal with them first, then reset;"),
                 "  2. --export-undelivered FILE: save them (database and key, owner-only archive, checked before",
                 "     anything is removed) to be delivered later or by the help desk;",
                 f"  3. --discard-undelivered {total}: destroy them (typed confirmation; recorded in {data / HISTORY})."]
        raise Failure(EXIT_UNDELIVERED, "\n".join(lines))
    if args.discard_undelivered is not None and args.discard_undelivered != total:
        raise Failure(EXIT_UNDELIVERED, f"--discard-undelivered {args.discard_undelivered} does not match: the "
                                        f"outbox holds {total} undelivered submission(s); nothing was removed")

    if not targets:
        print(f"{NAME}: nothing to remove in {data}: the terminal is in its factory state")
        return EXIT_OK
    width = max(len(str(t.path)) for t in targets)
    listing = [f"  {t.path!s:<{width}}  {t.what}" for t in targets]
    if not args.yes:
        print(f"{NAME}: would remove (terminal {cfg.terminal.id}, data in {data}):")
        print("\n".join(listing))
        for line in kept:
            print(f"  kept: {line}")
        if export is not None and total:
            print(f"  after exporting {total} undelivered submission(s) to {export}")
        if args.discard_undelivered is not None and total:
            print(f"  DISCARDING {total} undelivered submission(s)")
        print(f"{NAME}: nothing removed; run again with --yes to remove these", file=sys.stderr)
        return EXIT_USAGE

    record: dict[str, Any] = {"at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
                              "terminal": cfg.terminal.id, "user": os.environ.get("SUDO_USER") or os.environ.get("USER", ""),
                              "undelivered": waiting}
    if export is not None and not total:
        print(f"{NAME}: no undelivered submissions: nothing to export")
    if total and export is not None:
        export_undelivered(paths, export, cfg.terminal.id, counts)
        print(f"{NAME}: exported {total} undelivered submission(s) to {export} (owner-only; opened and checked)")
        record["exported_to"] = str(export)
    elif total:
        log.warning("reset: %d undelivered submission(s) discarded by typed confirmation", total)
        print(f"{NAME}: discarding {total} undelivered submission(s), as confirmed", file=sys.stderr)
        record["discarded"] = total
    removed: list[str] = []
    failed: list[str] = []
    for target in targets:
        try:
            note = remove(target)
        except OSError as exc:
            failed.append(f"  {target.path}: {exc.strerror or exc}")
            continue
        removed.append(f"  {target.path}  {target.what}{note}")
    _tidy([paths.key_file.parent, paths.outbox_db.parent, paths.outbox_key_file.parent, paths.log_file.parent], data)
    record["removed"] = [str(t.path) for t in targets]
    record["failed"] = failed
    _record(data, record)
    print(f"{NAME}: removed (terminal {cfg.terminal.id}):")
    print("\n".join(removed) if removed else "  nothing")
    for line in kept:
        print(f"  kept: {line}")
    if failed:
        print(f"{NAME}: could not remove:\n" + "\n".join(failed), file=sys.stderr)
        return EXIT_INTERNAL
    print(f"{NAME}: done; recorded in {data / HISTORY}"
          + ("" if args.keep_keys else "; enrol the terminal again before use (python -m provisioning enrol)"))
    return EXIT_OK
