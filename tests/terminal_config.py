"""A terminal's own configuration file for the tests that load one: the device checks, and
`python -m provisioning selftest` and `diagnose`. Imported by name: pytest puts tests/ on
sys.path (no __init__.py here)."""
from __future__ import annotations

from pathlib import Path

TERMINAL = "ZJ-TEST-0042"
ALL_DEVICES = ("idcard", "smartcard", "camera", "receipt_printer", "qr_scanner", "scanner", "a4_printer")


def write_config(tmp_path: Path, devices: dict[str, str]) -> Path:
    """A terminal file: the named devices with their TOML lines, every other device disabled."""
    lines = ["[terminal]", f'id = "{TERMINAL}"', 'location = "测试网点一楼"', f'data_dir = "{tmp_path / "data"}"']
    for name in ALL_DEVICES:
        lines += [f"[devices.{name}]", devices.get(name, "enabled = false")]
    path = tmp_path / "terminal.toml"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path
