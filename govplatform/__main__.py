"""Command line of the reference platform.

    python -m govplatform serve [--host H] [--port P]      start (migrates first); prints the URL
    python -m govplatform migrate                           bring the database schema to head
    python -m govplatform enrolment-code --terminal-id ID   print a new one-time enrolment code
    python -m govplatform openapi --write | --check         write / compare govapi/openapi.json

Settings come from GOVPLATFORM_* environment variables (see govplatform/settings.py).
"""
from __future__ import annotations

import argparse
import json
import logging
import socket
import sys
from pathlib import Path
from typing import Any

from govplatform.settings import REPO_ROOT, Settings, SettingsError

OPENAPI_FILE = REPO_ROOT / "govapi" / "openapi.json"


def render_openapi(doc: dict[str, Any]) -> str:
    """The committed form: sorted keys, indent 2, UTF-8 as is, final newline."""
    return json.dumps(doc, ensure_ascii=False, sort_keys=True, indent=2) + "\n"


def build_openapi() -> dict[str, Any]:
    """The document the server publishes, built against a throw-away database."""
    import tempfile

    from govplatform.app import create_app

    with tempfile.TemporaryDirectory(prefix="govplatform-openapi-") as tmp:
        app = create_app(Settings(data_dir=Path(tmp), database_url=""))
        try:
            return app.openapi()
        finally:
            app.state.platform.db.dispose()


def _setup_logging(level: str) -> None:
    from govplatform.privacy import install_log_masking

    logging.basicConfig(level=level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("alembic").setLevel(logging.WARNING)
    install_log_masking()


def cmd_serve(settings: Settings, args: argparse.Namespace) -> int:
    import uvicorn

    from govplatform.app import create_app

    host = args.host or settings.host
    port = settings.port if args.port is None else args.port
    settings = settings.model_copy(update={"host": host, "port": port})
    app = create_app(settings)
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    # proto must say TCP: asyncio sets TCP_NODELAY on accepted sockets only then, and without
    # it every small response waits ~40 ms for a delayed ACK.
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        print(f"govplatform: cannot listen on {host}:{port} ({exc.strerror}); choose another port with "
              f"--port or GOVPLATFORM_PORT", file=sys.stderr)
        return 2
    sock.listen(128)
    bound = sock.getsockname()[1]
    shown = f"[{host}]" if family == socket.AF_INET6 else host
    print(f"govplatform: listening on http://{shown}:{bound} (database {settings.database_url.split('://')[0]}, "
          f"signatures {', '.join(settings.signature_algorithms)})", flush=True)
    config = uvicorn.Config(app, log_config=None, access_log=True, log_level=settings.log_level.lower(),
                            lifespan="on")
    server = uvicorn.Server(config)
    server.run(sockets=[sock])
    return 0


def cmd_migrate(settings: Settings, _: argparse.Namespace) -> int:
    from govplatform.db import Database

    db = Database(settings)
    db.migrate()
    db.dispose()
    print(f"govplatform: database schema is at head ({settings.database_url.split('://')[0]})")
    return 0


def cmd_enrolment_code(settings: Settings, args: argparse.Namespace) -> int:
    import re

    from govplatform.runtime import Platform, issue_enrolment_code
    from govplatform.schemas import TERMINAL_ID

    if not re.match(TERMINAL_ID, args.terminal_id):
        print(f"govplatform: terminal id {args.terminal_id!r} must match {TERMINAL_ID}", file=sys.stderr)
        return 2
    platform = Platform.open(settings)
    code, expires = issue_enrolment_code(platform, args.terminal_id)
    platform.db.dispose()
    if args.json:
        print(json.dumps({"terminal_id": args.terminal_id, "enrolment_code": code, "expires_at": expires.isoformat()}))
    else:
        print(code)
        print(f"for terminal {args.terminal_id}, once, until {expires.isoformat(timespec='seconds')}", file=sys.stderr)
    return 0


def cmd_openapi(_: Settings, args: argparse.Namespace) -> int:
    text = render_openapi(build_openapi())
    path = Path(args.file)
    if args.write:
        path.write_text(text, encoding="utf-8")
        print(f"govplatform: wrote {path}")
        return 0
    if args.check:
        committed = path.read_text(encoding="utf-8") if path.exists() else ""
        if committed != text:
            print(f"govplatform: {path} differs from what the server publishes: run "
                  "python -m govplatform openapi --write and commit the result", file=sys.stderr)
            return 1
        print(f"govplatform: {path} matches the server")
        return 0
    sys.stdout.write(text)
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m govplatform", description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    serve = sub.add_parser("serve", help="start the platform (migrates first)")
    serve.add_argument("--host", help="listen address (default: setting host, 127.0.0.1)")
    serve.add_argument("--port", type=int, help="listen port, 0 = any free port (default: setting port, 8780)")
    sub.add_parser("migrate", help="bring the database schema to head")
    code = sub.add_parser("enrolment-code", help="print a new one-time enrolment code for a terminal")
    code.add_argument("--terminal-id", required=True)
    code.add_argument("--json", action="store_true", help="print JSON (code and expiry)")
    api = sub.add_parser("openapi", help="print, write or check govapi/openapi.json")
    mode = api.add_mutually_exclusive_group()
    mode.add_argument("--write", action="store_true")
    mode.add_argument("--check", action="store_true", help="exit 1 when the committed file differs")
    api.add_argument("--file", default=str(OPENAPI_FILE))
    args = parser.parse_args(argv)
    try:
        settings = Settings()
    except (ValueError, SettingsError) as exc:
        print(f"govplatform: settings error: {exc}", file=sys.stderr)
        return 2
    _setup_logging(settings.log_level)
    handlers = {"serve": cmd_serve, "migrate": cmd_migrate, "enrolment-code": cmd_enrolment_code,
                "openapi": cmd_openapi}
    try:
        return handlers[args.command](settings, args)
    except SettingsError as exc:
        print(f"govplatform: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
