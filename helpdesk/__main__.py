"""`python -m helpdesk`: the remote help-desk console (远程帮办坐席), for the people who run it.

In the order of a first installation:

    python -m helpdesk keygen --data /var/lib/helpdesk
        the command-signing key; put the printed public key into every terminal's
        [fleet] console_public_key
    python -m fleet add-console --folder /etc/kiosk-fleet --out /etc/helpdesk/broker-password
        (on the broker host) the console's broker account
    printf '%s\\n' 'a long password' | python -m helpdesk add-staff wangfang --role agent \\
        --display-name 王芳 --data /var/lib/helpdesk
    python -m helpdesk serve --data /var/lib/helpdesk --broker-host broker.gov.example \\
        --broker-port 8883 --ca-file /etc/helpdesk/fleet-ca.pem \\
        --account-password-file /etc/helpdesk/broker-password

Roles: viewer (sees the fleet, alerts and queue), agent (also takes help calls), supervisor
(also restarts terminals' devices and resets visits, reads the audit).

Exit codes: 0 done; 2 a bad argument or setting (the message says which); 3 a service problem
(the database or a key file cannot be used); 4 refused (keygen would replace the key the
terminals trust); 1 an internal error.
"""
from __future__ import annotations

import argparse
import getpass
import logging
import socket
import sys
from pathlib import Path

EXIT_OK, EXIT_INTERNAL, EXIT_USAGE, EXIT_SERVICE, EXIT_REFUSED = 0, 1, 2, 3, 4
DEFAULT_PORT = 8790


def _say(message: str) -> None:
    print(f"helpdesk: {message}", file=sys.stderr, flush=True)


def cmd_keygen(args: argparse.Namespace) -> int:
    from govapi.signing import ALGORITHMS
    from helpdesk.secrets_store import KEY_FILE, KeyExists, generate_key

    if args.algorithm not in ALGORITHMS:
        _say(f"--algorithm must be one of {', '.join(ALGORITHMS)}")
        return EXIT_USAGE
    try:
        keypair = generate_key(args.data, args.algorithm, force=args.force)
    except KeyExists as exc:
        _say(str(exc))
        return EXIT_REFUSED
    except OSError as exc:
        _say(f"cannot write {args.data / KEY_FILE}: {exc.strerror}")
        return EXIT_SERVICE
    print(f"# the console's command-signing key is in {args.data / KEY_FILE} (owner-only)\n"
          f"# put these two lines into every terminal's [fleet] section:\n"
          f'console_algorithm = "{keypair.algorithm}"\nconsole_public_key = "{keypair.public_key}"')
    return EXIT_OK


def _read_password(args: argparse.Namespace) -> str:
    if not sys.stdin.isatty():
        return sys.stdin.readline().rstrip("\n")
    first = getpass.getpass(f"password for {args.name}: ")
    if getpass.getpass("the same again: ") != first:
        raise ValueError("the two passwords differ")
    return first


def cmd_add_staff(args: argparse.Namespace) -> int:
    from helpdesk.passwords import WeakPassword, check_strength
    from helpdesk.secrets_store import DATABASE_FILE, prepare_folder
    from helpdesk.store import Store, StoreError

    try:
        password = _read_password(args)
        check_strength(password)
    except (ValueError, WeakPassword) as exc:
        _say(f"{exc}; nothing changed")
        return EXIT_USAGE
    except (EOFError, KeyboardInterrupt):
        _say("no password given; nothing changed")
        return EXIT_USAGE
    try:
        store = Store(prepare_folder(args.data) / DATABASE_FILE)
    except StoreError as exc:
        _say(str(exc))
        return EXIT_SERVICE
    try:
        staff = store.add_staff(args.name, args.display_name or args.name, args.role, password)
        store.audit("cli", "add_staff", "ok", details=f"{staff.name} as {staff.role}")
    except ValueError as exc:
        _say(f"{exc}; nothing changed")
        return EXIT_USAGE
    finally:
        store.close()
    print(f"staff {staff.name} ({staff.display_name}) may log in as {staff.role}")
    return EXIT_OK


def cmd_list_staff(args: argparse.Namespace) -> int:
    from helpdesk.secrets_store import DATABASE_FILE
    from helpdesk.store import Store, StoreError

    try:
        store = Store(args.data / DATABASE_FILE)
    except StoreError as exc:
        _say(str(exc))
        return EXIT_SERVICE
    for s in store.list_staff():
        print(f"{s.name}\t{s.display_name}\t{s.role}\t{'active' if s.active else 'disabled'}")
    store.close()
    return EXIT_OK


def cmd_audit(args: argparse.Namespace) -> int:
    from helpdesk.secrets_store import DATABASE_FILE
    from helpdesk.store import Store, StoreError

    try:
        store = Store(args.data / DATABASE_FILE)
    except StoreError as exc:
        _say(str(exc))
        return EXIT_SERVICE
    for line in reversed(store.audit_lines(args.last)):
        print("\t".join(str(line[k]) for k in ("at", "staff", "action", "terminal", "call_id", "outcome", "details")))
    store.close()
    return EXIT_OK


def _setup_logging(level: str) -> None:
    from kiosk.privacy import PrivacyFilter

    logging.basicConfig(level=level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    for handler in logging.getLogger().handlers:
        handler.addFilter(PrivacyFilter())


def cmd_serve(args: argparse.Namespace) -> int:
    import uvicorn

    from fleet.client import (
        FleetAccount,
        FleetAccountError,
        read_password_file,
        tls_context,
    )
    from govapi.signing import KeyFileError
    from helpdesk.app import create_app
    from helpdesk.console import Console, ConsoleSettings
    from helpdesk.store import StoreError

    _setup_logging(args.log_level)
    try:
        password = read_password_file(args.account_password_file)
        tls_context(str(args.ca_file), args.server_name)
    except FleetAccountError as exc:
        _say(str(exc))
        return EXIT_USAGE
    account = FleetAccount(args.broker_host, args.broker_port, str(args.ca_file), args.account_name, password,
                           args.server_name)
    settings = ConsoleSettings(data_dir=args.data, account=account, client_id=args.client_id,
                               reply_timeout_s=args.reply_timeout, https_only=args.https_only)
    try:
        console = Console(settings)
    except KeyFileError as exc:
        _say(str(exc))
        return EXIT_SERVICE
    except StoreError as exc:
        _say(str(exc))
        return EXIT_SERVICE
    family = socket.AF_INET6 if ":" in args.host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    try:
        sock.bind((args.host, args.port))
    except OSError as exc:
        _say(f"cannot listen on {args.host}:{args.port} ({exc.strerror}); choose another --port")
        console.close()
        return EXIT_USAGE
    sock.listen(128)
    port = sock.getsockname()[1]
    if not console.store.list_staff():
        _say(f"no staff can log in yet: add one with `python -m helpdesk add-staff NAME --role supervisor "
             f"--data {args.data}`")
    print(f"helpdesk: listening on http://{args.host}:{port} (fleet broker {args.broker_host}:{args.broker_port} "
          f"as {args.account_name})", flush=True)
    config = uvicorn.Config(create_app(console), log_config=None, access_log=False, lifespan="on",
                            timeout_graceful_shutdown=3)
    server = uvicorn.Server(config)
    try:
        server.run(sockets=[sock])
    finally:
        console.store.close()
    return EXIT_OK


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m helpdesk", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    def data_arg(p: argparse.ArgumentParser) -> None:
        p.add_argument("--data", type=Path, required=True,
                       help="the console's data folder (database, keys; owner-only), e.g. /var/lib/helpdesk")

    p = sub.add_parser("serve", help="run the console", formatter_class=argparse.RawDescriptionHelpFormatter,
                       epilog="e.g. python -m helpdesk serve --data /var/lib/helpdesk --broker-host broker.gov.example "
                              "--ca-file /etc/helpdesk/fleet-ca.pem "
                              "--account-password-file /etc/helpdesk/broker-password")
    data_arg(p)
    p.add_argument("--broker-host", required=True, help="the fleet broker (mosquitto)")
    p.add_argument("--broker-port", type=int, default=8883)
    p.add_argument("--ca-file", type=Path, required=True, help="the fleet CA certificate that signed the broker's")
    p.add_argument("--server-name", default="", help="the name in the broker's certificate, when not --broker-host")
    p.add_argument("--account-name", default="helpdesk", help="the console's broker account (default helpdesk)")
    p.add_argument("--account-password-file", type=Path, required=True, help="its password, in an owner-only file")
    p.add_argument("--client-id", default="helpdesk-console",
                   help="MQTT client id; two consoles on one broker need two ids")
    p.add_argument("--host", default="127.0.0.1", help="address to serve staff on (put TLS in front of it)")
    p.add_argument("--port", type=int, default=DEFAULT_PORT, help=f"default {DEFAULT_PORT}; 0 picks a free one")
    p.add_argument("--reply-timeout", type=float, default=10.0, help="seconds to wait for a terminal's answer")
    p.add_argument("--https-only", action="store_true", help="session cookie over HTTPS only (behind TLS)")
    p.add_argument("--log-level", default="INFO")
    p.set_defaults(run=cmd_serve)

    p = sub.add_parser("add-staff", help="add a staff member or change one's password or role",
                       epilog="e.g. printf '%%s\\n' 'a long password' | python -m helpdesk add-staff wangfang "
                              "--role agent --display-name 王芳 --data /var/lib/helpdesk")
    p.add_argument("name", help="the login name")
    p.add_argument("--role", required=True, choices=("viewer", "agent", "supervisor"))
    p.add_argument("--display-name", default="", help="shown to citizens on the kiosk (e.g. 王芳)")
    data_arg(p)
    p.set_defaults(run=cmd_add_staff)

    p = sub.add_parser("keygen", help="make the console's command-signing key and print its public half",
                       epilog="e.g. python -m helpdesk keygen --data /var/lib/helpdesk")
    data_arg(p)
    p.add_argument("--algorithm", default="sm2-sm3", help="sm2-sm3 (default) or ecdsa-p256-sha256")
    p.add_argument("--force", action="store_true", help="replace an existing key (then update every terminal)")
    p.set_defaults(run=cmd_keygen)

    p = sub.add_parser("list-staff", help="who may log in, with roles", epilog="e.g. python -m helpdesk list-staff "
                       "--data /var/lib/helpdesk")
    data_arg(p)
    p.set_defaults(run=cmd_list_staff)

    p = sub.add_parser("audit", help="print the newest audit lines", epilog="e.g. python -m helpdesk audit --last 50 "
                       "--data /var/lib/helpdesk")
    data_arg(p)
    p.add_argument("--last", type=int, default=50)
    p.set_defaults(run=cmd_audit)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.run(args))
    except KeyboardInterrupt:
        return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
