"""Dispatcher for ``python -m provisioning``: one argparse subcommand per technician task."""
from __future__ import annotations

import argparse
import sys
from types import ModuleType

from provisioning import configure, detect, diagnose, enrol, read_card, read_id, reset, selftest, test_print

# Each module: NAME, SUMMARY, EXAMPLE, register(subparsers) and run(args) -> int. In the order of an
# installation: find the devices, write the config, enrol, prove it; then the tools for later.
COMMANDS: tuple[ModuleType, ...] = (detect, configure, enrol, selftest, read_id, read_card, test_print,
                                    diagnose, reset)


def build_parser() -> argparse.ArgumentParser:
    """The top-level parser; its help lists every command with an example, so it teaches."""
    examples = "\n".join(f"  {m.NAME:<10} {m.SUMMARY}\n             e.g. {m.EXAMPLE}" for m in COMMANDS)
    parser = argparse.ArgumentParser(
        prog="python -m provisioning",
        description="Technician commands for a self-service terminal: check and set up its devices "
        "on site. Nothing here changes the kiosk's configuration unless a command says so.",
        epilog=f"commands:\n{examples}\n\n'python -m provisioning COMMAND --help' explains a command.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for module in COMMANDS:
        module.register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Parse the command line and run the chosen command; its return value is the exit code."""
    args = build_parser().parse_args(argv)
    return int(args.run(args))


if __name__ == "__main__":
    sys.exit(main())
