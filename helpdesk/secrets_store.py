"""The console's secrets in its data folder: the command-signing key and the session secret.

Both owner-only (0600 in a 0700 folder), made once and refused when others can read them.
The signing key is made on purpose (`python -m helpdesk keygen`): its public half goes into
every terminal's config, so replacing it silently would cut the console off from the fleet.
The session secret is made at the first start; replacing it only logs every staff member out.
"""
from __future__ import annotations

import os
import secrets
import stat
from pathlib import Path

from govapi.signing import KeyFileError, KeyPair

KEY_FILE = "console-key.json"
SESSION_SECRET_FILE = "session-secret"
DATABASE_FILE = "helpdesk.db"


class KeyExists(Exception):
    """keygen would replace the key every terminal trusts."""


def prepare_folder(data_dir: Path) -> Path:
    data_dir = Path(data_dir)
    data_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    os.chmod(data_dir, 0o700)
    return data_dir


def generate_key(data_dir: Path, algorithm: str, *, force: bool = False) -> KeyPair:
    path = prepare_folder(data_dir) / KEY_FILE
    if path.exists() and not force:
        raise KeyExists(f"{path} exists: every terminal trusts its public key. Use --force only when you will "
                        "put the new public key into every terminal's [fleet] console_public_key")
    keypair = KeyPair.generate(algorithm)
    keypair.save(path)
    return keypair


def load_key(data_dir: Path) -> KeyPair:
    path = Path(data_dir) / KEY_FILE
    if not path.exists():
        raise KeyFileError(f"the console has no command-signing key in {data_dir}: run "
                           f"`python -m helpdesk keygen --data {data_dir}` and put the printed public key into "
                           "the terminals' [fleet] console_public_key")
    return KeyPair.load(path)


def session_secret(data_dir: Path) -> str:
    """The cookie-signing secret, made once (owner-only)."""
    path = prepare_folder(data_dir) / SESSION_SECRET_FILE
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        if path.stat().st_mode & (stat.S_IRWXG | stat.S_IRWXO):
            raise KeyFileError(f"{path} is readable by other users, who could forge staff sessions: "
                               f"chmod 600 {path}") from None
        value = path.read_text(encoding="ascii").strip()
        if len(value) < 32:
            raise KeyFileError(f"{path} is damaged (too short): delete it and restart (staff log in again)")
        return value
    value = secrets.token_urlsafe(48)
    with os.fdopen(fd, "w", encoding="ascii") as fh:
        fh.write(value + "\n")
    return value
