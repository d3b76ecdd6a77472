"""diagnose: write a support bundle with personal data removed.

For a technician or the help desk: one owner-only file,
kiosk-diagnose-<terminal id>-<UTC time>.tar.gz, holding

  versions.txt  the OS, Python, the versions of the software stack, pcscd/CUPS/SANE, the git commit
  config.toml   the effective configuration with secrets removed (key files are named, never read)
  devices.json  each device's status and self-test (kiosk/device_checks.py; not with --no-devices)
  outbox.json   how many submissions wait, by state and kind (never their content)
  logs/         the kiosk's log and its rotated files, the last --since hours
  MANIFEST.txt  what is in it, and how personal data was removed

Every file of the bundle is scrubbed before it is written: ID numbers and mobile numbers
are masked (the same rules as the kiosk's log filter, kiosk/privacy.py, applied again),
names and addresses after a label (name=, "name": , 姓名：, 申请人：, 住址：, address=, ...)
are masked, and every secret found in the configuration is removed wherever it appears.
"""
from __future__ import annotations

import argparse
import datetime as dt
import importlib.metadata as md
import io
import json
import math
import os
import platform
import re
import shutil
import subprocess
import sys
import tarfile
import time
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from provisioning.console import EXIT_OK, Failure, guarded, load_config_or_fail

NAME = "diagnose"
SUMMARY = "write a support bundle (versions, config without secrets, devices, outbox counts, logs), personal data removed"
EXAMPLE = "python -m provisioning diagnose --output /media/usb --since 24"

EXIT_USAGE = 2  # also argparse's code for a bad argument

ROOT = Path(__file__).resolve().parent.parent
REMOVED = "<removed>"

# -- secrets in the configuration ----------------------------------------------------------------------
# a key holding one of these words (as a word of its name: pin_hash, api_token, private_key) is a
# secret; `key` alone is too, except as the name of a file (key_file: a path, which may be shown)
_SECRET_WORDS = {"pin", "pins", "secret", "secrets", "token", "tokens", "password", "passwords", "passwd",
                 "passphrase", "salt", "hash", "hashes", "credential", "credentials", "private", "key", "keys",
                 "apikey", "privkey", "cookie", "session"}
_PATH_WORDS = {"file", "path", "dir", "directory", "folder"}
_SECRET_VALUE = re.compile(r"-----BEGIN|^pbkdf2_|^\$(?:2[aby]|argon2)", re.IGNORECASE)


def _words(key: str) -> list[str]:
    spaced = re.sub(r"([a-z0-9])([A-Z])", r"\1_\2", str(key))
    return [w for w in re.split(r"[^A-Za-z0-9]+", spaced.lower()) if w]


def secret_key(key: str) -> bool:
    """Whether a setting of this name holds a secret (its value is removed)."""
    words = _words(key)
    if not words or not _SECRET_WORDS.intersection(words):
        return False
    return words[-1] not in _PATH_WORDS  # a key file's path is shown, its content never read


def _strip_userinfo(value: str) -> str:
    """https://user:password@host/ -> https://user:<removed>@host/ (a URL's password)."""
    try:
        parts = urlsplit(value)
    except ValueError:
        return value
    if parts.password:
        host = parts.hostname or ""
        netloc = f"{parts.username}:{REMOVED}@{host}" + (f":{parts.port}" if parts.port else "")
        return urlunsplit(parts._replace(netloc=netloc))
    return value


def redact(data: Any, found: set[str], key: str = "") -> Any:
    """The configuration with every secret replaced by <removed>; the removed values are added to
    `found` (to be removed from the logs too)."""
    if isinstance(data, dict):
        return {k: redact(v, found, str(k)) for k, v in data.items()}
    if isinstance(data, list):
        return [redact(v, found, key) for v in data]
    if isinstance(data, str):
        if (key and secret_key(key) and data) or _SECRET_VALUE.search(data):
            found.add(data)
            return REMOVED
        stripped = _strip_userinfo(data)
        if stripped != data:
            password = urlsplit(data).password
            if password:
                found.add(password)
        return stripped
    return data  # numbers and switches are settings, not secrets (pin_pad_timeout_s = 60)


# -- a small TOML writer (the standard library only reads TOML) -------------------------------------------
_BARE = re.compile(r"^[A-Za-z0-9_-]+$")


def _toml_key(key: str) -> str:
    return key if _BARE.match(key) else json.dumps(key, ensure_ascii=False)


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if math.isnan(value):
            return "nan"
        return repr(value) if not math.isinf(value) else ("inf" if value > 0 else "-inf")
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{_toml_key(str(k))} = {_toml_value(v)}" for k, v in value.items()) + "}"
    if value is None:
        return '""'
    return json.dumps(str(value), ensure_ascii=False)  # JSON's escapes are TOML's


def to_toml(data: dict[str, Any]) -> str:
    lines: list[str] = []

    def table(node: dict[str, Any], path: list[str]) -> None:
        scalars = {k: v for k, v in node.items() if not isinstance(v, dict)}
        tables = {k: v for k, v in node.items() if isinstance(v, dict)}
        if path and (scalars or not tables):
            lines.append("[" + ".".join(_toml_key(p) for p in path) + "]")
        for k, v in scalars.items():
            lines.append(f"{_toml_key(str(k))} = {_toml_value(v)}")
        if path and (scalars or not tables):
            lines.append("")
        for k, v in tables.items():
            table(v, path + [str(k)])

    table(data, [])
    return "\n".join(lines).rstrip() + "\n"


# -- personal data ----------------------------------------------------------------------------------------
_LABELS = (r"(?:家庭住址|联系地址|户籍地址|姓名|名字|申请人|办事人|持卡人|持证人|联系人|户主|住址|地址|"
           r"(?<![A-Za-z0-9_])(?:full_?name|name_?en|english_?name|holder(?:_?name)?|applicant(?:_?name)?|"
           r"citizen(?:_?name)?|contact(?:_?name)?|address|addr|name)(?![A-Za-z0-9_]))")
_LABELLED = re.compile(_LABELS + r"""(["']?\s*[:=：]\s*)(?:"([^"]*)"|'([^']*)'|“([^”]*)”|([^\s,;，；、。)}\]"'<>]+))""",
                       re.IGNORECASE)


def _mask_labelled(match: re.Match[str]) -> str:
    from kiosk.privacy import mask_name

    label, sep = match.group(0)[: match.start(1) - match.start(0)], match.group(1)
    for group, (open_q, close_q) in zip((2, 3, 4, 5), (('"', '"'), ("'", "'"), ("“", "”"), ("", ""))):
        value = match.group(group)
        if value is not None:
            if value == REMOVED or set(value) <= {"*"}:
                return match.group(0)
            return f"{label}{sep}{open_q}{mask_name(value)}{close_q}"
    return match.group(0)


class Scrubber:
    """Removes personal data and secrets from text: registered secrets and the configuration's
    secrets (removed), labelled names and addresses (masked), then ID and mobile numbers with the
    kiosk's own masking (kiosk.privacy.mask_text)."""

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        self.secrets = sorted({s for s in secrets if len(s.strip()) >= 4}, key=len, reverse=True)
        self.changed_lines = 0

    def __call__(self, text: str) -> str:
        from kiosk.privacy import mask_text

        before = text
        for secret in self.secrets:
            if secret in text:
                text = text.replace(secret, REMOVED)
        text = _LABELLED.sub(_mask_labelled, text)
        text = mask_text(text)
        if text != before:
            self.changed_lines += sum(a != b for a, b in zip(before.splitlines(), text.splitlines())) or 1
        return text


# -- what goes in -------------------------------------------------------------------------------------------
def _run_quiet(argv: list[str], timeout: float = 5.0, ok_codes: tuple[int, ...] = (0,)) -> str:
    if shutil.which(argv[0]) is None:
        return ""
    try:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=timeout)
    except (OSError, subprocess.SubprocessError):
        return ""
    return done.stdout.strip() if done.returncode in ok_codes else ""


def _os_name() -> str:
    try:
        for line in Path("/etc/os-release").read_text().splitlines():
            if line.startswith("PRETTY_NAME="):
                return line.partition("=")[2].strip().strip('"')
    except OSError:
        pass
    return platform.platform()


def _git_commit(root: Path) -> str:
    """The checkout's commit, read from .git without running git; '' when not a checkout."""
    git = root / ".git"
    try:
        if git.is_file():  # a worktree or submodule: "gitdir: <path>"
            git = (root / git.read_text().partition("gitdir:")[2].strip()).resolve()
        head = (git / "HEAD").read_text().strip()
    except OSError:
        return ""
    if not head.startswith("ref:"):
        return head
    ref = head.partition(":")[2].strip()
    common = git
    try:
        common = (git / (git / "commondir").read_text().strip()).resolve()
    except OSError:
        pass
    for folder in dict.fromkeys((git, common)):
        try:
            return (folder / ref).read_text().strip() + f" ({ref})"
        except OSError:
            pass
        try:
            for line in (folder / "packed-refs").read_text().splitlines():
                if line.endswith(" " + ref):
                    return line.split()[0] + f" ({ref})"
        except OSError:
            pass
    return f"unknown ({ref})"


STACK_FALLBACK = ("kivy", "pyserial", "pyscard", "pycups", "python-sane", "opencv-python-headless", "pyttsx3",
                  "requests", "pydantic", "cryptography", "gmssl", "zxing-cpp", "pillow", "numpy", "fpdf2")
SYSTEM_PACKAGES = ("pcscd", "libccid", "cups", "cups-daemon", "printer-driver-cups-pdf", "libsane1", "sane-utils",
                   "espeak-ng", "mosquitto")


def versions_text(root: Path = ROOT) -> str:
    lines = [f"created (UTC)     {dt.datetime.now(dt.UTC).strftime('%Y-%m-%d %H:%M:%S')}",
             f"OS                {_os_name()}",
             f"kernel            {platform.release()} {platform.machine()}",
             f"Python            {sys.version.split()[0]} ({sys.executable})"]
    try:
        own = md.version("kiosk-terminal")
        requirements = md.requires("kiosk-terminal") or []
    except md.PackageNotFoundError:
        own, requirements = "not installed as a package", []
    try:  # the checkout's own list is newer than an installed package's metadata
        import tomllib

        requirements = tomllib.loads((root / "pyproject.toml").read_text())["project"]["dependencies"]
    except (OSError, KeyError, ValueError):
        pass
    lines.append(f"kiosk-terminal    {own}")
    commit = _git_commit(root)
    lines.append(f"git commit        {commit or 'not a git checkout'}")
    names = [re.match(r"[A-Za-z0-9._-]+", r).group(0) for r in requirements  # type: ignore[union-attr]
             if "extra ==" not in r and re.match(r"[A-Za-z0-9._-]+", r)] or list(STACK_FALLBACK)
    lines += ["", "Python packages (the stack):"]
    for name in dict.fromkeys(names):
        try:
            version = md.version(name)
        except md.PackageNotFoundError:
            version = "NOT INSTALLED"
        lines.append(f"  {name:<28}{version}")
    lines += ["", "system packages:"]
    dpkg = shutil.which("dpkg-query") is not None
    installed: dict[str, str] = {}
    if dpkg:  # one call for all (it fails for a package it does not know, and still lists the others)
        listing = _run_quiet(["dpkg-query", "-W", "-f=${Package} ${Version}\n", *SYSTEM_PACKAGES], ok_codes=(0, 1))
        installed = dict(line.split(" ", 1) for line in listing.splitlines() if " " in line)
    for package in SYSTEM_PACKAGES:
        lines.append(f"  {package:<28}{installed.get(package) or 'not installed'}")
    if not dpkg:
        lines.append("  (dpkg-query not found: versions unknown)")
    return "\n".join(lines) + "\n"


_STAMP = re.compile(r"^(\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2})")


def log_files(log_file: Path) -> list[Path]:
    """The log and its rotated files (kiosk.log.1 ... .5), oldest first."""
    rotated = []
    if log_file.parent.is_dir():
        for p in log_file.parent.iterdir():
            suffix = p.name[len(log_file.name) + 1:]
            if p.name.startswith(log_file.name + ".") and suffix.isdigit() and p.is_file():
                rotated.append((int(suffix), p))
    files = [p for _, p in sorted(rotated, reverse=True)]
    if log_file.is_file():
        files.append(log_file)
    return files


def recent_lines(path: Path, since: dt.datetime) -> Iterator[str]:
    """The lines of a log written at or after `since` (local time, as the log writes it); a line
    without a time stamp (a traceback) goes with the line before it."""
    keep = True
    with path.open("r", encoding="utf-8", errors="replace") as fh:
        for line in fh:
            stamp = _STAMP.match(line)
            if stamp:
                try:
                    keep = dt.datetime.strptime(stamp.group(1), "%Y-%m-%d %H:%M:%S") >= since
                except ValueError:
                    keep = True
            if keep:
                yield line


def config_text(cfg: Any, scrub_found: set[str]) -> str:
    data = redact(cfg.model_dump(mode="json", by_alias=True), scrub_found)
    return ("# The terminal's effective configuration (defaults, its file, KIOSK__ variables), as\n"
            "# `python -m provisioning diagnose` found it. Secrets are replaced by <removed>; key files are\n"
            "# named by their path, their content is never included.\n\n" + to_toml(data))


def devices_json(cfg: Any) -> str:
    from kiosk.device_checks import check_devices
    from provisioning.selftest import open_bench

    bench = open_bench(cfg, None)
    try:
        checks = check_devices(bench.devices, terminal_id=cfg.terminal.id, location=cfg.terminal.location)
    finally:
        bench.close()
    note = (f"the kiosk was running ({bench.kiosk[0].describe()}): devices it holds were not opened"
            if bench.kiosk else "")
    return json.dumps({"checked_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
                       "note": note, "devices": [c.as_dict() for c in checks]}, ensure_ascii=False, indent=2) + "\n"


def outbox_json(db: Path) -> str:
    from kiosk.device_setup import OutboxUnreadable, outbox_counts, undelivered

    try:
        counts = outbox_counts(db)
        info: dict[str, Any] = {"database": str(db), "exists": db.is_file(), "by_state_and_kind": counts,
                                "undelivered_by_kind": undelivered(counts),
                                "undelivered": sum(undelivered(counts).values())}
    except OutboxUnreadable as exc:
        info = {"database": str(db), "exists": True, "error": str(exc)}
    info["note"] = "counts only: no payload, receipt number or error text is included"
    return json.dumps(info, ensure_ascii=False, indent=2) + "\n"


# -- the bundle ---------------------------------------------------------------------------------------------
def _safe_id(terminal_id: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", terminal_id).strip("._") or "terminal"


def bundle_path(output: str | None, terminal_id: str, now: dt.datetime) -> Path:
    """The file to write: --output as a folder (existing, or ending in /) or as the file itself."""
    name = f"kiosk-diagnose-{_safe_id(terminal_id)}-{now.strftime('%Y%m%dT%H%M%SZ')}.tar.gz"
    if not output:
        return Path.cwd() / name
    target = Path(output).expanduser()
    if target.is_dir() or output.endswith(os.sep):
        if not target.is_dir():
            raise Failure(EXIT_USAGE, f"--output {output}: the folder does not exist")
        return target / name
    if not target.parent.is_dir():
        raise Failure(EXIT_USAGE, f"--output {output}: the folder {target.parent} does not exist")
    if target.exists():
        raise Failure(EXIT_USAGE, f"--output {output}: the file exists already; give a new name or a folder")
    return target


class _Bundle:
    def __init__(self, tar: tarfile.TarFile, top: str, scrub: Scrubber) -> None:
        self.tar, self.top, self.scrub = tar, top, scrub
        self.members: list[tuple[str, int, str]] = []
        self.mtime = time.time()

    def add(self, name: str, text: str, what: str) -> None:
        data = self.scrub(text).encode("utf-8")
        info = tarfile.TarInfo(f"{self.top}/{name}")
        info.size, info.mode, info.mtime = len(data), 0o600, self.mtime
        self.tar.addfile(info, io.BytesIO(data))
        self.members.append((name, len(data), what))


def write_bundle(path: Path, cfg: Any, *, since_hours: float, devices: bool,
                 progress: Callable[[str], None] = lambda _m: None) -> dict[str, Any]:
    """Write the bundle to `path` (owner-only, written whole then renamed into place)."""
    from kiosk.device_setup import terminal_paths

    paths = terminal_paths(cfg)
    found: set[str] = set()
    progress("configuration")
    config = config_text(cfg, found)
    scrub = Scrubber(found)
    now = dt.datetime.now(dt.UTC)
    top = path.name.removesuffix(".tar.gz")
    partial = path.with_name(f".{path.name}.partial")
    fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    summary: dict[str, Any] = {}
    try:
        with os.fdopen(fd, "wb") as raw, tarfile.open(fileobj=raw, mode="w:gz") as tar:
            bundle = _Bundle(tar, top, scrub)
            progress("versions")
            bundle.add("versions.txt", versions_text(), "the OS, Python, the software stack's versions, the commit")
            bundle.add("config.toml", config, "the effective configuration, secrets removed")
            if devices:
                progress("devices (status and self-test)")
                bundle.add("devices.json", devices_json(cfg), "each device's status and self-test")
            progress("outbox counts")
            bundle.add("outbox.json", outbox_json(paths.outbox_db), "the outbox's entries counted by state and kind")
            progress("logs")
            cutoff = dt.datetime.now() - dt.timedelta(hours=since_hours)
            log_count = 0
            for log in log_files(paths.log_file):
                if dt.datetime.fromtimestamp(log.stat().st_mtime) < cutoff:
                    continue  # rotated before the window began
                text = "".join(recent_lines(log, cutoff))
                bundle.add(f"logs/{log.name}", text, f"{log} since {cutoff:%Y-%m-%d %H:%M} local time")
                log_count += 1
            summary = {"logs": log_count, "masked_lines": scrub.changed_lines, "secrets": len(scrub.secrets)}
            manifest = [
                f"Support bundle of terminal {cfg.terminal.id} ({cfg.terminal.location})",
                f"made {now:%Y-%m-%d %H:%M:%S} UTC by `python -m provisioning diagnose`",
                "",
                "contents:",
                *(f"  {name:<22}{size:>9} bytes  {what}" for name, size, what in bundle.members),
                "  MANIFEST.txt           this file",
                "",
                f"logs: {paths.log_file} and its rotated files, the last {since_hours:g} hours"
                + ("" if log_count else " (none found)"),
                "" if devices else "devices: not checked (--no-devices)",
                "",
                "Personal data removed. Every file above passed through the same masking as the kiosk's log",
                "filter (kiosk/privacy.py) again: ID numbers keep their region and last four characters",
                "(110101********0011), mobile numbers their first three and last four (138****5678);",
                "names and addresses after a label (name=, \"name\":, 姓名：, 申请人：, 住址：, address=, ...)",
                "keep their first character only; the configuration's secrets (PIN and card hashes,",
                "salts, tokens, passwords, key material) are <removed> wherever they appeared. Key files",
                "are named, never read. The outbox is counted, never opened.",
                f"{scrub.changed_lines} line(s) had something masked or removed.",
            ]
            bundle.add("MANIFEST.txt", "\n".join(manifest) + "\n", "")
        os.replace(partial, path)
    except BaseException:
        partial.unlink(missing_ok=True)
        raise
    os.chmod(path, 0o600)
    return summary


# -- the command ------------------------------------------------------------------------------------------
def _hours(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of hours") from None
    if not 0 < value < 24 * 366:
        raise argparse.ArgumentTypeError(f"{text}: give a number of hours above 0 (e.g. 48)")
    return value


def register(subparsers: Any) -> None:
    """Add the diagnose subcommand to `python -m provisioning`."""
    parser = subparsers.add_parser(
        NAME, help=SUMMARY, description=__doc__,
        epilog=f"""examples:
  {EXAMPLE}
  python -m provisioning diagnose --no-devices            no device is opened (those the running kiosk
                                                          holds are never opened anyway)
  python -m provisioning diagnose --output /tmp/ticket-4711.tar.gz

exit codes:
  0  bundle written (its path is printed)
  2  bad arguments or configuration
  1  internal error (run with --verbose and report it)""",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", help="the terminal's configuration file (default: as the kiosk finds it)")
    parser.add_argument("--output", metavar="DIR_OR_FILE",
                        help="a folder for the bundle (default: the current folder), or the file to write")
    parser.add_argument("--since", type=_hours, default=48.0, metavar="HOURS",
                        help="the logs of the last HOURS hours (default 48)")
    parser.add_argument("--no-devices", action="store_true", help="do not open the devices for a self-test")
    parser.add_argument("-v", "--verbose", action="store_true", help="log the steps on stderr")
    parser.set_defaults(run=run)


@guarded(NAME)
def run(args: argparse.Namespace) -> int:
    os.environ.setdefault("OPENCV_LOG_LEVEL", "ERROR")
    cfg = load_config_or_fail(args.config, EXIT_USAGE)
    path = bundle_path(args.output, cfg.terminal.id, dt.datetime.now(dt.UTC))
    try:
        summary = write_bundle(path, cfg, since_hours=args.since, devices=not args.no_devices,
                               progress=lambda what: print(f"{NAME}: {what}", file=sys.stderr, flush=True))
    except PermissionError as exc:
        raise Failure(EXIT_USAGE, f"cannot write {path}: {exc.strerror}; choose another --output") from None
    print(f"{NAME}: wrote {path} (owner-only; {summary['logs']} log file(s), personal data removed)")
    print(str(path))
    return EXIT_OK
