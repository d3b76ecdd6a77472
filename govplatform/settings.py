"""Settings of the reference platform: defaults that run on a fresh machine, overridable by env.

Every setting can be given as an environment variable `GOVPLATFORM_<NAME>` (e.g.
`GOVPLATFORM_PORT=9000`, `GOVPLATFORM_DATABASE_URL=postgresql+psycopg://...`,
`GOVPLATFORM_SIGNATURE_ALGORITHMS=sm2-sm3,ecdsa-p256-sha256`,
`GOVPLATFORM_PUBLIC_URL=https://zwfw.example.gov.cn`). Defaults are safe: loopback only, SM2
signatures only, a SQLite file under the data directory, text messages stored, not sent.
`public_url` (default http://127.0.0.1:8780) must be set in a deployment: certificates print
{public_url}/verify/<code> as their QR code and text messages carry {public_url}/progress/<receipt>.
"""
from __future__ import annotations

import os
import secrets
import stat
from pathlib import Path
from typing import Annotated

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from govapi.signing import ALGORITHMS, SM2_SM3

PLATFORM_VERSION = "0.1.0"
REPO_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_DATA_DIR = REPO_ROOT / "var" / "govplatform"
TOKEN_SECRET_FILE = "token_secret"


class SettingsError(ValueError):
    """A setting is unusable; the message names it and says how to fix it."""


class Settings(BaseSettings):
    """What an operator may change without touching code."""

    model_config = SettingsConfigDict(env_prefix="GOVPLATFORM_", extra="forbid", validate_default=True)

    data_dir: Path = Field(default=DEFAULT_DATA_DIR, description="where the SQLite file and the token secret live")
    catalogue_dir: Path | None = Field(default=None, description="a folder of extra catalogue *.toml files (a "
                                       "province's own items); read again whenever one changes")
    database_url: str = Field(default="", description="SQLAlchemy URL; empty = sqlite file platform.db in data_dir")
    host: str = Field(default="127.0.0.1", description="listen address; loopback by default")
    port: int = Field(default=8780, ge=0, le=65535, description="listen port; 0 = any free port")
    signature_algorithms: Annotated[list[str], NoDecode] = Field(
        default_factory=lambda: [SM2_SM3], description="accepted request signature algorithms")
    citizen_token_ttl_s: int = Field(default=900, ge=30, le=86400)
    require_face_check: bool = Field(default=False,
                                     description="refuse identity evidence without a passed face check")
    max_body_bytes: int = Field(default=1024 * 1024, ge=1024, le=64 * 1024 * 1024)
    enrolment_code_ttl_s: int = Field(default=24 * 3600, ge=60)
    idempotency_retention_days: int = Field(default=30, ge=1,
                                            description="how long a submission's answer is kept for repeats")
    appointment_days: int = Field(default=7, ge=1, le=60,
                                  description="days ahead for which appointment slots are seeded")
    public_url: str = Field(default="http://127.0.0.1:8780",
                            description="the platform's address as citizens' phones reach it: the base of "
                                        "verification links ({public_url}/verify/<code>) printed on certificates "
                                        "and progress links ({public_url}/progress/<receipt>) sent by text message")
    public_rate_limit_per_minute: int = Field(
        default=60, ge=0, le=100_000,
        description="requests per minute one client address may make to the public pages /verify and "
                    "/progress (a burst of this size, refilled evenly); 0 = no limit")
    sms_gateway: str = Field(default="store", pattern=r"^(store|[A-Za-z_][\w.]*:[A-Za-z_]\w*)$",
                             description="how text messages leave the platform: 'store' keeps them in the "
                                         "sms_messages table only (reference); 'package.module:Class' plugs in a "
                                         "govplatform.sms.SmsGateway that talks to a real SMS service")
    token_secret: SecretStr | None = Field(default=None,
                                           description="HMAC key for tokens and codes; generated when unset")
    log_level: str = Field(default="INFO")

    @field_validator("signature_algorithms", mode="before")
    @classmethod
    def _split(cls, value: object) -> object:
        if isinstance(value, str):
            text = value.strip()
            if text.startswith("["):
                import json

                return json.loads(text)
            return [part.strip() for part in text.split(",") if part.strip()]
        return value

    @field_validator("signature_algorithms")
    @classmethod
    def _known(cls, value: list[str]) -> list[str]:
        if not value:
            raise ValueError(f"at least one algorithm is needed; known: {', '.join(ALGORITHMS)}")
        for alg in value:
            if alg not in ALGORITHMS:
                raise ValueError(f"unknown signature algorithm {alg!r}; known: {', '.join(ALGORITHMS)}")
        return list(dict.fromkeys(value))

    @field_validator("public_url")
    @classmethod
    def _public_url(cls, value: str) -> str:
        from urllib.parse import urlsplit

        text = value.strip().rstrip("/")
        parts = urlsplit(text)
        if parts.scheme not in ("http", "https") or not parts.netloc or parts.query or parts.fragment:
            raise ValueError(f"public_url {value!r} must be an absolute http(s) URL without query, e.g. "
                             "https://zwfw.example.gov.cn (links on certificates and in text messages start with it)")
        return text

    @model_validator(mode="after")
    def _db(self) -> Settings:
        if not self.database_url:
            self.database_url = f"sqlite:///{(self.data_dir / 'platform.db').as_posix()}"
        return self

    @property
    def is_sqlite(self) -> bool:
        return self.database_url.startswith("sqlite")

    def secret(self) -> bytes:
        """The HMAC key: the setting, else a random key kept owner-only in the data dir."""
        if self.token_secret is not None:
            value = self.token_secret.get_secret_value().encode("utf-8")
            if len(value) < 16:
                raise SettingsError("GOVPLATFORM_TOKEN_SECRET is shorter than 16 characters: use a long random value")
            return value
        return load_or_create_secret(self.data_dir / TOKEN_SECRET_FILE)


def load_or_create_secret(path: Path) -> bytes:
    """Read the secret file, creating it (0600) on first use; refuse one others can read."""
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            pass  # another process created it first
        else:
            with os.fdopen(fd, "w", encoding="ascii") as fh:
                fh.write(secrets.token_hex(32))
    mode = path.stat().st_mode
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise SettingsError(f"token secret file {path} is readable by other users: chmod 600 {path}")
    text = path.read_text(encoding="ascii").strip()
    try:
        key = bytes.fromhex(text)
    except ValueError:
        raise SettingsError(f"token secret file {path} is damaged: delete it (citizen tokens and "
                            "unused enrolment codes become invalid) and restart") from None
    if len(key) < 16:
        raise SettingsError(f"token secret file {path} holds fewer than 16 bytes: delete it and restart")
    return key
