"""configure: write the terminal's own config file from what `detect` found.

The file holds only what differs from config/defaults.toml (README, "Configuration"):
the [terminal] values given here, [platform] url if given, and one [devices.<name>]
section per device class, named as in the defaults (idcard, smartcard, camera,
receipt_printer, a4_printer, scanner, qr_scanner):

- a detected device: its driver when it is not the default one, and every parameter
  detect found (port, baudrate, reader, source, queue, ...), written even when equal to
  today's default, so the file says where the device is; a comment says what answered.
  When the previous file had this section with the same driver, its other keys (an
  encoding, a paper width a technician set) are kept; `enabled`/`emulate` are dropped
  (a device found is a real, enabled one);
- two devices of one class: the first is configured, the others are listed in comments
  (and on the screen) for a technician to add by hand if the terminal uses them;
- a device of the defaults that detect looked for but did not find: `enabled = false`
  with a comment "not found by detect on <date>" (its other keys are kept, so it can be
  switched on again). A class detect did not look for in every place it can be (--skip,
  --only: a scanner is a SANE device or a camera) keeps its section as it was.

Everything else in the existing file ([platform], [ui], [face], other devices...) is
kept as it was; its comments are not (tomli-w writes none): they stay in the backup
`<file>.bak-<timestamp>` made of every file replaced. The result is checked with the
kiosk's own loader (config.loader.load_config) in a temporary file beside the target
and only then renamed over it, so a config the kiosk would refuse is never written.
"""
from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import shutil
import sys
import tempfile
import tomllib
from pathlib import Path
from typing import Any

from config.loader import DEFAULTS_FILE, SYSTEM_FILE
from provisioning.console import EXIT_OK, Failure, guarded, write

NAME = "configure"
SUMMARY = "write the terminal's config (/etc/kiosk/terminal.toml) from detect's JSON, checked before it is written"
EXAMPLE = "python -m provisioning configure --from detected.json --terminal-id ZJ-HZ-0012 --location 'XX 银行 1 楼'"

EXIT_BAD_INPUT = 2  # also argparse's code for a bad argument
EXIT_CANNOT_WRITE = 3

DETECT_FORMAT = "kiosk-detect/1"
COMMON_KEYS = ("class", "driver", "enabled", "emulate", "emulator")
# which kind of detect looks for which device class (a document camera is a camera)
KINDS_OF_CLASS = {"idcard": ("serial",), "receipt_printer": ("serial",), "qr_scanner": ("serial",),
                  "smartcard": ("pcsc",), "camera": ("camera",), "a4_printer": ("cups",),
                  "scanner": ("sane", "camera")}
ALL_KINDS = ("serial", "pcsc", "camera", "cups", "sane")


# -- the defaults --------------------------------------------------------------------------------
def default_devices() -> dict[str, dict[str, Any]]:
    with DEFAULTS_FILE.open("rb") as fh:
        return dict(tomllib.load(fh).get("devices", {}))


def section_names() -> dict[str, str]:
    """Device class -> the name of its [devices.<name>] section in the defaults."""
    names: dict[str, str] = {}
    for name, section in default_devices().items():
        names.setdefault(section.get("class", name), name)
    return names


# -- reading ----------------------------------------------------------------------------------------
def load_detected(path: str) -> dict[str, Any]:
    """detect's JSON, checked for what configure uses; Failure (exit 2) in words otherwise."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise Failure(EXIT_BAD_INPUT, f"--from {path} does not exist: run `python -m provisioning detect --output "
                                      f"{path}` first") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise Failure(EXIT_BAD_INPUT, f"cannot read --from {path} ({getattr(exc, 'strerror', None) or exc})") from None
    try:
        doc = json.loads(text)
    except json.JSONDecodeError as exc:
        raise Failure(EXIT_BAD_INPUT, f"--from {path} is not valid JSON ({exc.msg} at line {exc.lineno}): give the "
                                      "file `detect --output` wrote") from None
    problem = _shape_problem(doc)
    if problem:
        raise Failure(EXIT_BAD_INPUT, f"--from {path} is not detect's output: {problem}; give the file "
                                      "`python -m provisioning detect --output FILE` wrote")
    return doc


def _shape_problem(doc: Any) -> str:
    if not isinstance(doc, dict):
        return "it holds no JSON object"
    if doc.get("format", DETECT_FORMAT) != DETECT_FORMAT:
        return f"its format is {doc.get('format')!r}, this configure reads {DETECT_FORMAT!r}"
    entries = doc.get("detected")
    if not isinstance(entries, list):
        return 'it has no "detected" list'
    for i, entry in enumerate(entries):
        if not (isinstance(entry, dict) and isinstance(entry.get("class"), str) and
                isinstance(entry.get("driver"), str) and isinstance(entry.get("params"), dict)):
            return f'entry {i} of "detected" lacks a "class", "driver" or "params"'
    looked = doc.get("looked_for", list(ALL_KINDS))
    if not (isinstance(looked, list) and all(isinstance(k, str) for k in looked)):
        return '"looked_for" is not a list of kinds'
    return ""


def read_existing(path: Path) -> dict[str, Any]:
    if not path.exists():
        return {}
    try:
        with path.open("rb") as fh:
            return tomllib.load(fh)
    except tomllib.TOMLDecodeError as exc:
        raise Failure(EXIT_BAD_INPUT, f"the existing {path} is not valid TOML ({exc}): correct it or move it away; "
                                      "configure keeps the sections it does not write, so it must read it") from None
    except OSError as exc:
        raise Failure(EXIT_CANNOT_WRITE, f"cannot read the existing {path} ({exc.strerror or exc})") from None


# -- building ---------------------------------------------------------------------------------------
def _inline(params: dict[str, Any]) -> str:
    from provisioning.detect import toml_value

    return ", ".join(f"{k} = {toml_value(v)}" for k, v in params.items())


def _reset_for_driver(section: dict[str, Any], default: dict[str, Any], device_class: str, driver: str) -> None:
    """A driver other than the default's: the default's own parameters would be inherited and
    may not fit the new driver; set those the new driver also has to its own default."""
    from devices import registry

    try:
        fields = registry.driver_class(device_class, driver).Params.model_fields  # type: ignore[attr-defined]
    except (registry.UnknownDriver, AttributeError):
        return  # the loader names the unknown driver
    for key in default:
        if key in COMMON_KEYS or key in section or key not in fields:
            continue
        value = fields[key].default
        if isinstance(value, (str, int, float, bool, list)):
            section[key] = value


def build(detected: dict[str, Any], existing: dict[str, Any], args: argparse.Namespace, date: str) \
        -> tuple[dict[str, Any], dict[str, list[str]], list[str]]:
    """(the new file's tables, comment lines per table, lines for the technician)."""
    defaults = default_devices()
    looked = set(detected.get("looked_for", ALL_KINDS))
    entries: list[dict[str, Any]] = detected["detected"]
    doc: dict[str, Any] = {k: v for k, v in existing.items() if k != "devices"}
    if args.terminal_id is not None or args.location is not None:
        terminal = dict(existing.get("terminal", {}))
        if args.terminal_id is not None:
            terminal["id"] = args.terminal_id
        if args.location is not None:
            terminal["location"] = args.location
        doc = {"terminal": terminal, **{k: v for k, v in doc.items() if k != "terminal"}}
    if args.platform_url is not None:
        doc["platform"] = {**existing.get("platform", {}), "url": args.platform_url}
    old_devices: dict[str, Any] = dict(existing.get("devices", {}))
    devices: dict[str, Any] = {}
    comments: dict[str, list[str]] = {}
    said: list[str] = []
    by_class: dict[str, list[dict[str, Any]]] = {}
    for entry in entries:
        by_class.setdefault(entry["class"], []).append(entry)
    names = {**{c: c for c in by_class}, **section_names()}
    for device_class, name in sorted(names.items(), key=lambda item: list(defaults).index(item[1])
                                     if item[1] in defaults else len(defaults)):
        default = defaults.get(name, {})
        old = old_devices.pop(name, None)
        found = by_class.get(device_class, [])
        key = f"devices.{name}"
        if found:
            first = found[0]
            section: dict[str, Any] = {}
            if isinstance(old, dict) and old.get("class", default.get("class")) == device_class and \
                    old.get("driver", default.get("driver")) == first["driver"]:
                section = {k: v for k, v in old.items() if k not in ("enabled", "emulate")}
            if not default:
                section["class"] = device_class
            if first["driver"] != default.get("driver"):
                section["driver"] = first["driver"]
                _reset_for_driver(section, default, device_class, first["driver"])
            section.update(first["params"])
            devices[name] = section
            comments[key] = [(f"found by detect on {date}: {first.get('where', '')}: {first.get('evidence', '')} "
                              f"({first.get('confidence', 'certain')})")]
            line = f"  {name:<16} {first.get('where') or _inline(first['params'])} ({first['driver']})"
            for other in found[1:]:
                comments[key].append(f"also found, not configured: {other.get('where', '')}: driver = "
                                     f"\"{other['driver']}\", {_inline(other['params'])}")
            if len(found) > 1:
                line += (f"; {len(found) - 1} more {device_class} found, not configured (see the comments in the "
                         f"file): {', '.join(str(o.get('where') or _inline(o['params'])) for o in found[1:])}")
            said.append(line)
        elif set(KINDS_OF_CLASS.get(device_class, ALL_KINDS)) <= looked and default:
            section = dict(old) if isinstance(old, dict) else {}
            section["enabled"] = False
            devices[name] = section
            comments[key] = [f"not found by detect on {date}"]
            said.append(f"  {name:<16} not found: enabled = false")
        elif old is not None:
            devices[name] = old  # a kind detect did not look at: as it was
    devices.update(old_devices)  # sections configure does not own
    if devices:
        doc["devices"] = devices
    return doc, comments, said


def _comment(lines: list[str]) -> str:
    return "".join("# " + " ".join(line.splitlines()) + "\n" for line in lines)


def render(doc: dict[str, Any], comments: dict[str, list[str]], header: list[str]) -> str:
    """TOML text: the header, plain keys, then each table with its comment lines above it."""
    import tomli_w

    parts = [_comment(header)]
    plain = {k: v for k, v in doc.items() if not isinstance(v, dict)}
    if plain:
        parts.append(tomli_w.dumps(plain))
    for key, value in doc.items():
        if not isinstance(value, dict):
            continue
        if key == "devices":
            for name, section in value.items():
                note = _comment(comments.get(f"devices.{name}", []))
                body = tomli_w.dumps({"devices": {name: section}}) if section else f"[devices.{name}]\n"
                parts.append(note + body)
        else:
            parts.append(_comment(comments.get(key, [])) + tomli_w.dumps({key: value}))
    return "\n".join(p.rstrip("\n") + "\n" for p in parts if p)


# -- checking and writing ----------------------------------------------------------------------------
def validate(text: str, beside: Path, shown_as: Path) -> Path:
    """Write `text` to a temporary file in `beside` and load it as the kiosk would; return the
    file (the caller renames or removes it); Failure (exit 2) with the loader's words."""
    from config.loader import ConfigError, load_config

    fd, name = tempfile.mkstemp(prefix=f".{shown_as.name}.", suffix=".new", dir=beside)
    tmp = Path(name)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        load_config(tmp, environ={})
    except ConfigError as exc:
        tmp.unlink(missing_ok=True)
        raise Failure(EXIT_BAD_INPUT, f"{str(exc).replace(str(tmp), str(shown_as))} -- nothing was written"
                                      f"{f'; {shown_as} is unchanged' if shown_as.exists() else ''}") from None
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return tmp


def install(tmp: Path, target: Path, stamp: str) -> Path | None:
    """Keep a backup of `target`, then rename `tmp` over it (atomic); return the backup."""
    backup = None
    mode = 0o644
    if target.exists():
        backup = target.with_name(f"{target.name}.bak-{stamp}")
        n = 1
        while backup.exists():
            backup, n = target.with_name(f"{target.name}.bak-{stamp}-{n}"), n + 1
        shutil.copy2(target, backup)
        info = target.stat()
        mode = info.st_mode & 0o7777
        try:
            os.chown(tmp, info.st_uid, info.st_gid)
        except OSError:
            pass  # not root: the file stays ours
    os.chmod(tmp, mode)
    os.replace(tmp, target)
    return backup


# -- the command --------------------------------------------------------------------------------------
def register(subparsers: Any) -> None:
    """Add the configure subcommand to `python -m provisioning`."""
    parser = subparsers.add_parser(
        NAME, help=SUMMARY, description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=f"""examples:
  python -m provisioning detect --listen 10 --output detected.json
  {EXAMPLE}
  python -m provisioning configure --from detected.json --dry-run     # print it, write nothing

exit codes:
  0  written (or, with --dry-run, printed): the kiosk reads it at its next start
  2  bad input: --from missing or not detect's JSON, the existing file is not TOML, or
     the result would not be a valid config (the loader's message; nothing written)
  3  the file cannot be written (permissions, read-only disk)
  1  internal error (run with --verbose and report it)""")
    parser.add_argument("--from", dest="source", required=True, metavar="FILE",
                        help="the JSON that `detect --output FILE` saved")
    parser.add_argument("--output", default=str(SYSTEM_FILE), metavar="FILE",
                        help=f"the terminal's config file to write (default {SYSTEM_FILE}); an existing one is "
                        "kept as FILE.bak-<timestamp>")
    parser.add_argument("--terminal-id", metavar="ID", help="[terminal] id, as enrolled with the platform")
    parser.add_argument("--location", metavar="TEXT", help="[terminal] location, in words the help desk understands")
    parser.add_argument("--platform-url", metavar="URL", help="[platform] url, the platform's API")
    parser.add_argument("--dry-run", action="store_true",
                        help="print the TOML (checked as if written) on stdout and write nothing")
    parser.add_argument("-v", "--verbose", action="store_true", help="also log the steps on stderr")
    parser.set_defaults(run=run)


@guarded(NAME)
def run(args: argparse.Namespace) -> int:
    """Build, check and write the config; return the exit code (see the epilog in register())."""
    target = Path(args.output)
    now = dt.datetime.now()
    detected = load_detected(args.source)
    date = str(detected.get("detected_at") or now.date().isoformat())[:10]
    existing = read_existing(target)
    doc, comments, said = build(detected, existing, args, date)
    header = ["The terminal's own configuration: what differs from config/defaults.toml (see its comments).",
              f"Written by `python -m provisioning configure` on {now:%Y-%m-%d %H:%M} from {args.source}"
              + (f" (detect ran on {detected['host']} at {detected['detected_at']})"
                 if detected.get("host") and detected.get("detected_at") else "") + "."]
    text = render(doc, comments, header)
    if args.dry_run:
        tmp = validate(text, Path(tempfile.gettempdir()), target)
        tmp.unlink(missing_ok=True)
        write(text)
        print(f"{NAME}: --dry-run: the config above is valid; nothing was written to {target}", file=sys.stderr)
        print("\n".join(said), file=sys.stderr)
        return EXIT_OK
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = validate(text, target.parent, target)
        try:
            backup = install(tmp, target, now.strftime("%Y%m%d-%H%M%S"))
        finally:
            tmp.unlink(missing_ok=True)
    except OSError as exc:
        raise Failure(EXIT_CANNOT_WRITE, f"cannot write {target} ({exc.strerror or exc}): run as root, or give "
                                         "--output a writable place") from None
    write(f"{NAME}: wrote {target}" + (f" (the previous file is kept as {backup})" if backup else "") + "\n"
          + "\n".join(said) + ("\n" if said else "")
          + "the kiosk reads it at its next start (systemctl restart kiosk)\n")
    return EXIT_OK
