"""What every technician command shares: its failure type and the guard that turns it (or
Ctrl-C, or a bug) into an exit code, UTF-8 output, the masked summary layout, how the
drivers' logs are kept quiet unless asked for, loading the terminal's configuration and the
card readers' --timeout."""
from __future__ import annotations

import argparse
import functools
import logging
import sys
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from config.schema import KioskConfig

EXIT_OK = 0
EXIT_INTERNAL = 1  # a bug: `guarded` says so in one line (the traceback with --verbose)
EXIT_INTERRUPTED = 130  # Ctrl-C, as a shell reports a process ended by SIGINT


class Failure(Exception):
    """Ends the command with an exit code and one line for the technician."""

    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code


Command = Callable[[argparse.Namespace], int]  # a command's run(args): its exit code


def guarded(name: str) -> Callable[[Command], Command]:
    """Decorates a command's run(args): the drivers' logs as --verbose asks (set_up_logging), and
    a Failure, Ctrl-C or a bug becomes one line on stderr, prefixed with the command's `name`,
    and its exit code. With --verbose a bug is raised instead, so the traceback shows."""
    def decorate(body: Command) -> Command:
        @functools.wraps(body)
        def run(args: argparse.Namespace) -> int:
            set_up_logging(args.verbose)
            try:
                return body(args)
            except Failure as failure:
                print(f"{name}: {failure}", file=sys.stderr)
                return failure.code
            except KeyboardInterrupt:
                print(f"{name}: interrupted", file=sys.stderr)
                return EXIT_INTERRUPTED
            except Exception as exc:  # a bug: one line for the technician, the traceback with --verbose
                if args.verbose:
                    raise
                print(f"{name}: internal error ({type(exc).__name__}: {exc}); run again with --verbose and report it",
                      file=sys.stderr)
                return EXIT_INTERNAL
        return run
    return decorate


def load_config_or_fail(path: str | None, code: int) -> KioskConfig:
    """The terminal's configuration, as the kiosk finds it or from `path`; a bad one ends the
    command with `code` and the loader's own words (which file, which key, what is wrong)."""
    from config.loader import ConfigError, load_config

    try:
        return load_config(path)
    except ConfigError as exc:
        raise Failure(code, str(exc)) from None


def write(text: str) -> None:
    """UTF-8 on stdout whatever the locale: JSON is UTF-8, and names are Chinese."""
    sys.stdout.flush()
    sys.stdout.buffer.write(text.encode("utf-8"))
    sys.stdout.buffer.flush()


def masked_summary(title: str, rows: Iterable[tuple[str, object]]) -> list[str]:
    """A card's summary: a title, one aligned line per row that has a value, and the privacy note."""
    out = [title]
    out += [f"  {label:<14}{value}" for label, value in rows if value]
    out.append("personal data masked; --json prints it in full")
    return out


def set_up_logging(verbose: bool) -> None:
    """The drivers' steps on stderr with --verbose; otherwise nothing (not even warnings)."""
    if verbose:
        logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(levelname)s %(name)s: %(message)s")
    elif not logging.getLogger().handlers:  # else the driver's warnings reach stderr via logging's last resort
        logging.getLogger().addHandler(logging.NullHandler())


def card_wait_seconds(text: str) -> float:
    """The card readers' --timeout (an argparse type): 0 or more seconds to wait for a card."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds") from None
    if not value >= 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"{text} s: give 0 or more seconds (0 = do not wait for a card)")
    return value
