"""Load the configuration in layers and explain every mistake in one message.

Layers, later wins: `defaults.toml` beside this file, the terminal's own file, then
environment variables `KIOSK__SECTION__KEY`. Each key remembers which layer set it, so
an error names the file (or variable) a technician has to open, the key, and the fix.
"""
from __future__ import annotations

import difflib
import os
import tomllib
from pathlib import Path
from typing import Any, Mapping

from pydantic import BaseModel, ValidationError

from config.schema import KioskConfig

DEFAULTS_FILE = Path(__file__).with_name("defaults.toml")
SYSTEM_FILE = Path("/etc/kiosk/terminal.toml")
ENV_PREFIX = "KIOSK__"


class ConfigError(Exception):
    """A configuration mistake; `str()` is the one message shown at start-up."""

    def __init__(self, source: str, key: str, problem: str, fix: str) -> None:
        self.source, self.key, self.problem, self.fix = source, key, problem, fix
        where = f"key '{key}' " if key else ""
        super().__init__(f"configuration error in {source}: {where}{problem}. Fix: {fix}")


Provenance = dict[str, str]  # dotted key -> where it was set


def _merge(base: dict[str, Any], layer: Mapping[str, Any], source: str, prov: Provenance,
           prefix: str = "") -> None:
    for key, value in layer.items():
        dotted = f"{prefix}{key}"
        if isinstance(value, Mapping) and isinstance(base.get(key), dict):
            _merge(base[key], value, source, prov, dotted + ".")
        else:
            base[key] = _copy(value)
            _mark(value, source, prov, dotted)


def _copy(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {k: _copy(v) for k, v in value.items()}
    return value


def _mark(value: Any, source: str, prov: Provenance, dotted: str) -> None:
    prov[dotted] = source
    if isinstance(value, Mapping):
        for k, v in value.items():
            _mark(v, source, prov, f"{dotted}.{k}")


def _read_toml(path: Path) -> dict[str, Any]:
    try:
        data = path.read_bytes()
        # Windows Notepad saves UTF-8 with a byte-order mark, which TOML does not allow: accepted
        return tomllib.loads(data.removeprefix(b"\xef\xbb\xbf").decode("utf-8"))
    except FileNotFoundError:
        raise ConfigError(str(path), "", "the file does not exist",
                          "check the path given with --config or KIOSK_CONFIG") from None
    except PermissionError:
        raise ConfigError(str(path), "", "the file cannot be read (permission denied)",
                          "make it readable by the kiosk user") from None
    except UnicodeDecodeError as exc:  # tomllib decodes the whole file as UTF-8 before parsing
        line = exc.object[:exc.start].count(b"\n") + 1
        raise ConfigError(str(path), "", f"is not UTF-8 text (line {line}: byte {exc.start + 1} of the file, "
                          f"0x{exc.object[exc.start]:02X}; Chinese Windows editors save GBK by default)",
                          "save the file as UTF-8 (in the editor's Save As, choose the encoding UTF-8)") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(str(path), "", f"is not valid TOML ({exc})",
                          "correct the syntax at that line; strings need quotes") from None


def _env_layer(environ: Mapping[str, str]) -> tuple[dict[str, Any], dict[str, str]]:
    """Turn KIOSK__A__B=v variables into a nested mapping; remember each variable's name."""
    layer: dict[str, Any] = {}
    names: dict[str, str] = {}
    for name, raw in sorted(environ.items()):
        if not name.startswith(ENV_PREFIX):
            continue
        parts = [p.lower() for p in name[len(ENV_PREFIX):].split("__") if p]
        if not parts:
            continue
        try:
            value = tomllib.loads(f"v = {raw}")["v"]
        except tomllib.TOMLDecodeError:
            value = raw
        node = layer
        for part in parts[:-1]:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise ConfigError(f"environment variable {name}", ".".join(parts), "conflicts with "
                                  "another variable that sets a value there", "unset one of them")
        node[parts[-1]] = value
        names[".".join(parts)] = f"environment variable {name}"
    return layer, names


def _source_of(dotted: str, prov: Provenance) -> str:
    key = dotted
    while key:
        if key in prov:
            return prov[key]
        key = key.rpartition(".")[0]
    return str(DEFAULTS_FILE)


def _table_source(dotted: str, prov: Provenance) -> str:
    """For a mistake across a table's keys: the layers that changed keys in it, not the defaults
    that merely set the table."""
    own = [src for key, src in prov.items() if key.startswith(dotted + ".") and src != str(DEFAULTS_FILE)]
    return " and ".join(dict.fromkeys(own)) if own else _source_of(dotted, prov)


def _siblings(model: type[BaseModel], loc: tuple[Any, ...]) -> list[str]:
    """Names of the settings that exist next to an unknown key, for a 'did you mean'."""
    current: Any = model
    for part in loc[:-1]:
        fields = getattr(current, "model_fields", None)
        if fields is None or part not in fields:
            return []
        annotation = fields[part].annotation
        current = getattr(annotation, "__args__", (annotation,))[-1] if part == "devices" else annotation
    fields = getattr(current, "model_fields", {})
    return [f.alias or n for n, f in fields.items()]


_TYPE_WORDS = {
    "bool_parsing": "must be true or false",
    "bool_type": "must be true or false",
    "int_parsing": "must be a whole number",
    "int_type": "must be a whole number",
    "int_from_float": "must be a whole number",
    "float_parsing": "must be a number",
    "float_type": "must be a number",
    "string_type": "must be text in quotes",
    "list_type": "must be a list, like [\"a\", \"b\"]",
    "dict_type": "must be a table",
    "model_type": "must be a table ([section])",
    "literal_error": "has a value that is not allowed",
}


def _explain(exc: ValidationError, model: type[BaseModel], prov: Provenance,
             prefix: tuple[Any, ...] = ()) -> ConfigError:
    errors = exc.errors()
    first = errors[0]
    loc = prefix + tuple(first["loc"])
    dotted = ".".join(str(p) for p in loc)
    got = first.get("input")
    source = _table_source(dotted, prov) if isinstance(got, Mapping) else _source_of(dotted, prov)
    kind = first["type"]
    more = f" ({len(errors) - 1} more problem(s) after this one)" if len(errors) > 1 else ""
    if kind == "extra_forbidden":
        names = _siblings(model, tuple(first["loc"])) if not prefix else list(
            getattr(model, "model_fields", {}))
        guess = difflib.get_close_matches(str(loc[-1]), names, n=1)
        hint = f"did you mean '{guess[0]}'? " if guess else ""
        return ConfigError(source, dotted, "is not a setting" + more,
                           f"{hint}correct the spelling or remove the line; "
                           f"the settings are documented in {DEFAULTS_FILE}")
    if kind == "missing":
        return ConfigError(source, dotted, "is required but not set" + more,
                           f"add it; see {DEFAULTS_FILE} for its meaning")
    problem = _TYPE_WORDS.get(kind, first["msg"].lower())
    if kind == "literal_error":
        problem = f"must be one of {first.get('ctx', {}).get('expected', '')}"
    elif kind.startswith(("greater", "less")):
        problem = first["msg"].lower()
    elif kind == "value_error":  # a validator's own words, host names and prefixes in their case
        problem = str(first.get("ctx", {}).get("error", first["msg"]))
    if isinstance(got, Mapping):  # a whole table: its keys are in the file (and may hold secrets)
        return ConfigError(source, dotted, f"{problem}{more}", f"correct the keys of [{dotted}]; see "
                           f"{DEFAULTS_FILE} for their meaning")
    return ConfigError(source, dotted, f"{problem}, but is {got!r}{more}",
                       f"set a valid value; see {DEFAULTS_FILE} for its meaning")


def _check_devices(cfg: KioskConfig, prov: Provenance) -> None:
    from devices import registry  # late: config must stay importable without device code

    for name, dev in cfg.devices.items():
        key = f"devices.{name}"
        try:
            cls = registry.driver_class(dev.device_class, dev.driver)
        except registry.UnknownDriver as exc:
            field = "class" if dev.device_class not in registry.DRIVERS else "driver"
            choices = (registry.known_classes() if field == "class"
                       else registry.known_drivers(dev.device_class))
            raise ConfigError(_source_of(f"{key}.{field}", prov), f"{key}.{field}", str(exc),
                              f"use one of: {', '.join(choices)}") from None
        params_model = getattr(cls, "Params", None)
        if params_model is not None:
            try:
                params_model.model_validate(dev.driver_params())
            except ValidationError as exc:
                raise _explain(exc, params_model, prov, ("devices", name)) from None
        if dev.emulate:
            try:
                registry.emulator_class(dev.device_class, dev.driver)
            except registry.UnknownDriver as exc:
                raise ConfigError(_source_of(f"{key}.emulate", prov), f"{key}.emulate", str(exc),
                                  "set emulate = false and connect the real device") from None


def find_terminal_file(explicit: str | os.PathLike[str] | None,
                       environ: Mapping[str, str]) -> Path | None:
    if explicit:
        return Path(explicit)
    if environ.get("KIOSK_CONFIG"):
        return Path(environ["KIOSK_CONFIG"])
    return SYSTEM_FILE if SYSTEM_FILE.exists() else None


def load_config(path: str | os.PathLike[str] | None = None,
                environ: Mapping[str, str] | None = None) -> KioskConfig:
    """Load defaults, then the terminal's file, then the environment; raise ConfigError."""
    environ = os.environ if environ is None else environ
    merged: dict[str, Any] = {}
    prov: Provenance = {}
    _merge(merged, _read_toml(DEFAULTS_FILE), str(DEFAULTS_FILE), prov)
    terminal_file = find_terminal_file(path, environ)
    if terminal_file is not None:
        _merge(merged, _read_toml(terminal_file), str(terminal_file), prov)
    env_layer, env_names = _env_layer(environ)
    _merge(merged, env_layer, "environment", prov)
    prov.update(env_names)
    try:
        cfg = KioskConfig.model_validate(merged)
    except ValidationError as exc:
        raise _explain(exc, KioskConfig, prov) from None
    _check_devices(cfg, prov)
    return cfg
