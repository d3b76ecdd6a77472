"""`python -m fleet`: set up the fleet broker (mosquitto) and its accounts, on the broker host.

    python -m fleet init --folder /etc/kiosk-fleet --name broker.gov.example --name 10.1.2.3
    python -m fleet add-terminal GD-SZ-0001 --folder /etc/kiosk-fleet --out /tmp/GD-SZ-0001
    python -m fleet add-console --folder /etc/kiosk-fleet --out /etc/helpdesk/broker-password
    python -m fleet list --folder /etc/kiosk-fleet
    python -m fleet remove-terminal GD-SZ-0001 --folder /etc/kiosk-fleet
    python -m fleet serve --folder /etc/kiosk-fleet          (mosquitto in the foreground)

Exit codes: 0 done, 2 bad argument, 3 the broker tools are missing or refused, 1 internal error.
After adding or removing accounts, a running mosquitto rereads them on SIGHUP
(`systemctl reload mosquitto` or `kill -HUP`).
"""
from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from fleet.broker import CONSOLE_USER, BrokerError, BrokerFolder, _tool
from fleet.protocol import ProtocolError

EXIT_OK, EXIT_INTERNAL, EXIT_USAGE, EXIT_BROKER = 0, 1, 2, 3


def _write_secret(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        fh.write(text + "\n")
    os.chmod(path, 0o600)


def _terminal_snippet(args: argparse.Namespace, terminal_id: str) -> str:
    host = args.broker_host or "BROKER-HOST"
    return (f"# /etc/kiosk/terminal.toml on {terminal_id}; copy ca.pem to /etc/kiosk/fleet-ca.pem and the\n"
            f"# password file to /etc/kiosk/fleet-password (chmod 600, owned by the kiosk user)\n"
            f"[fleet]\nenabled = true\nbroker_host = \"{host}\"\nbroker_port = {args.broker_port}\n"
            f"ca_file = \"/etc/kiosk/fleet-ca.pem\"\npassword_file = \"/etc/kiosk/fleet-password\"\n"
            f"console_public_key = \"<from `python -m helpdesk keygen`>\"\n")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m fleet", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    p_init = sub.add_parser("init", help="CA, broker certificate, ACL and mosquitto.conf")
    p_init.add_argument("--name", action="append", required=True,
                        help="a DNS name or address terminals dial (repeat for more)")
    p_init.add_argument("--listen", default="0.0.0.0")
    p_init.add_argument("--port", type=int, default=8883)
    p_init.add_argument("--user", default="", help="mosquitto drops to this user when started as root "
                        "(it must read the folder)")
    p_add = sub.add_parser("add-terminal", help="a broker account for one terminal")
    p_add.add_argument("terminal_id")
    p_add.add_argument("--out", type=Path, required=True,
                       help="folder for the terminal's files: fleet-password (owner-only) and fleet-ca.pem")
    p_add.add_argument("--broker-host", default="", help="printed in the terminal's config snippet")
    p_add.add_argument("--broker-port", type=int, default=8883)
    p_rm = sub.add_parser("remove-terminal", help="delete a terminal's account")
    p_rm.add_argument("terminal_id")
    p_console = sub.add_parser("add-console", help=f"the help-desk console's account ({CONSOLE_USER})")
    p_console.add_argument("--out", type=Path, required=True, help="the console's password file (owner-only)")
    sub.add_parser("list", help="the accounts")
    p_serve = sub.add_parser("serve", help="run mosquitto on the folder in the foreground")
    p_serve.add_argument("--host", default="127.0.0.1")
    p_serve.add_argument("--port", type=int, default=8883)
    for p in (p_init, p_add, p_rm, p_console, sub.choices["list"], p_serve):
        p.add_argument("--folder", type=Path, required=True, help="the broker's folder")
    args = parser.parse_args(argv)
    folder = BrokerFolder(args.folder)
    try:
        if args.command == "init":
            folder.init(args.name, listen=args.listen, port=args.port, run_as=args.user)
            print(f"broker folder ready: {folder.folder}\n  give every terminal {folder.ca_file}\n"
                  f"  start: mosquitto -c {folder.conf}  (or python -m fleet serve --folder {folder.folder})")
        elif args.command == "add-terminal":
            password = folder.add_account(args.terminal_id)
            _write_secret(args.out / "fleet-password", password)
            (args.out / "fleet-ca.pem").write_bytes(folder.ca_file.read_bytes())
            print(f"account {args.terminal_id} added; its files are in {args.out}\n")
            print(_terminal_snippet(args, args.terminal_id))
        elif args.command == "remove-terminal":
            folder.remove_account(args.terminal_id)
            print(f"account {args.terminal_id} removed; reload mosquitto (SIGHUP) to drop it now")
        elif args.command == "add-console":
            _write_secret(args.out, folder.add_account(CONSOLE_USER))
            print(f"console account {CONSOLE_USER} added; its password is in {args.out}")
        elif args.command == "list":
            for name in folder.accounts():
                print(name)
        elif args.command == "serve":
            if not folder.ready:
                raise BrokerError(f"{folder.folder} is not a broker folder yet: run `python -m fleet init` first")
            folder.write_conf(args.host, args.port, "root" if os.geteuid() == 0 else "")
            os.execv(_tool("mosquitto"), ["mosquitto", "-c", str(folder.conf)])
        return EXIT_OK
    except ProtocolError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except BrokerError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_BROKER


if __name__ == "__main__":
    sys.exit(main())
