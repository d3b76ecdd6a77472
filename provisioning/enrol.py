"""`python -m provisioning enrol`: give the terminal its own key pair and register it.

The key pair is made here, on the terminal; only the public key leaves it. The private
key is written owner-only to the configured `platform.key_file`. An existing key is
kept unless --force: re-enrolling by accident would lock the terminal out of the
platform until someone issues a new code.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

NAME = "enrol"
SUMMARY = "create this terminal's key pair and register it with the platform (one-time code)"
EXAMPLE = "python -m provisioning enrol --code 7K2M-9QXD-4T8P"


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        NAME, help=SUMMARY,
        description="Generate the terminal's key pair (SM2 by default), send the public key with "
        "the one-time enrolment code the platform's operator gave you, and store the private key "
        "owner-only in platform.key_file. The platform URL and terminal id come from the config.",
        epilog=f"""examples:
  {EXAMPLE}
  python -m provisioning enrol --config /etc/kiosk/terminal.toml --code 7K2M-9QXD-4T8P
  python -m provisioning enrol --code 7K2M-9QXD-4T8P --algorithm ecdsa-p256-sha256

exit codes:
  0  enrolled (or already enrolled, without --force)
  2  bad arguments or configuration (no platform.url, no terminal.id)
  3  the platform cannot be reached
  4  the platform refused (wrong, used or expired code; the message says which)""",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--code", required=True, help="the one-time enrolment code from the platform")
    parser.add_argument("--config", help="the terminal's config file (default: as the kiosk finds it)")
    parser.add_argument("--algorithm", default="sm2-sm3", choices=("sm2-sm3", "ecdsa-p256-sha256"),
                        help="signature algorithm (default sm2-sm3, the national standard)")
    parser.add_argument("--force", action="store_true", help="replace an existing key pair")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from config import ConfigError, load_config
    from govapi.signing import KeyPair
    from kiosk.govclient import PlatformClient, PlatformRejected, PlatformUnavailable
    from kiosk.platform_link import catalogue_cache, keep_catalogue

    try:
        cfg = load_config(args.config)
    except ConfigError as exc:
        print(f"enrol: {exc}", file=sys.stderr)
        return 2
    if not cfg.platform.url:
        print("enrol: platform.url is not set: put the platform's address in the terminal's config",
              file=sys.stderr)
        return 2
    if cfg.terminal.id in ("", "UNENROLLED"):
        print("enrol: terminal.id is not set: give the terminal the id the platform's operator "
              "registered (terminal.id in the config)", file=sys.stderr)
        return 2
    root = Path(__file__).resolve().parent.parent
    data_dir = Path(cfg.terminal.data_dir)
    data_dir = data_dir if data_dir.is_absolute() else root / data_dir
    key_file = Path(cfg.platform.key_file)
    key_file = key_file if key_file.is_absolute() else data_dir / key_file
    if key_file.exists() and not args.force:
        print(f"enrol: terminal {cfg.terminal.id} already has a key pair in {key_file}; "
              "nothing done (use --force to replace it with a new enrolment code)")
        return 0
    keys = KeyPair.generate(args.algorithm)
    client = PlatformClient(cfg.platform.url, cfg.terminal.id, keys, timeout_s=cfg.platform.timeout_s,
                            retries=1)
    try:
        answer = client.enrol(args.code, cfg.terminal.location)
    except PlatformUnavailable as exc:
        print(f"enrol: {exc}", file=sys.stderr)
        return 3
    except PlatformRejected as exc:
        print(f"enrol: the platform refused the enrolment: {exc.message}", file=sys.stderr)
        return 4
    keys.save(key_file)
    print(f"enrol: terminal {answer.get('terminal_id', cfg.terminal.id)} enrolled with "
          f"{keys.algorithm}; private key in {key_file} (owner-only)")
    # a first signed call proves the enrolment end to end, and the terminal keeps the
    # catalogue, so it has services to offer even if its first start is offline
    try:
        catalogue = client.catalogue()
    except (PlatformUnavailable, PlatformRejected) as exc:
        print(f"enrol: warning: the first signed request failed ({exc}); the terminal will fetch "
              "the catalogue when it starts", file=sys.stderr)
        return 0
    keep_catalogue(catalogue_cache(data_dir), catalogue)
    print(f"enrol: signed request verified; catalogue version {catalogue.get('version', '?')} with "
          f"{len(catalogue.get('items', []))} items kept")
    return 0
