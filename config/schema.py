"""The configuration schema: every key a terminal may set, its type and its meaning.

Pydantic models with `extra="forbid"`, so a misspelt key is an error rather than a
silently ignored setting. Device sections are validated in two steps: the common keys
here, then the driver's own parameters against that driver's `Params` model.
"""
from __future__ import annotations

import re
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    field_validator,
    model_validator,
)

from kiosk.codes import CodeRules, check_host_entry


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid")


class TerminalSection(_Section):
    id: str = Field(description="terminal identity as enrolled with the platform")
    location: str = Field(description="where the terminal stands, for the help desk")
    data_dir: str = Field(description="folder for logs and queued data")


class UiSection(_Section):
    fullscreen: bool
    width: int = Field(gt=0, le=8192)
    height: int = Field(gt=0, le=8192)
    font: str
    font_candidates: list[str]
    language: Literal["zh-CN", "en"]
    elder_mode_age: int = Field(ge=0, le=120, description="elder mode turns on by itself for card holders "
                                "this old or older; 0: only when the citizen touches it")
    help_hotline: str = Field(min_length=1, max_length=20, description="the number a citizen is given when "
                              "staff cannot be reached from the terminal")


class VisitSection(_Section):
    idle_timeout_s: float = Field(gt=0)
    idle_warning_s: float = Field(ge=0)
    identify_timeout_s: float = Field(gt=0)


class VoiceSection(_Section):
    enabled: bool
    voice: str
    rate: int = Field(ge=80, le=400)
    elder_rate: int = Field(ge=80, le=400, description="words per minute in elder mode")
    volume: float = Field(ge=0.0, le=1.0)
    quiet_hours: str = Field(pattern=r"^$|^([01][0-9]|2[0-3]):[0-5][0-9]-([01][0-9]|2[0-3]):[0-5][0-9]$",
                             description="HH:MM-HH:MM local time when `quiet_volume` applies; empty for never")
    quiet_volume: float = Field(ge=0.0, le=1.0)
    output_dir: str


class PlatformSection(_Section):
    url: str = Field(description="platform API base URL; empty for none")
    timeout_s: float = Field(gt=0, le=120)
    key_file: str
    outbox_db: str
    outbox_key_file: str
    delivery_interval_s: float = Field(gt=0)
    catalogue_refresh_s: float = Field(gt=0)
    public_url: str = Field(description="where citizens' phones reach the platform's public pages; "
                            "empty: the scheme and host of `url`")


class FaceSection(_Section):
    enabled: bool = Field(description="verify the card holder's face before any service")
    camera: str = Field(description="name of the [devices.<name>] camera to use")
    id_photo_threshold: float = Field(ge=0, le=1, description="cosine score, live face vs card photo")
    live_threshold: float = Field(ge=0, le=1, description="cosine score, live face vs itself during the challenge")
    attempts: int = Field(ge=1, le=10)
    time_limit_s: float = Field(gt=0, le=600)
    challenges: list[Literal["turn_left", "turn_right", "nod", "closer"]] = Field(min_length=1)


class HandoutSection(_Section):
    receipt_printer: str = Field(description="name of the [devices.<name>] receipt printer; empty for none")
    a4_printer: str = Field(description="name of the [devices.<name>] A4 printer; empty for none")


TrustedHost = Annotated[str, AfterValidator(check_host_entry)]


class CodesSection(_Section):
    """What scanned codes the terminal accepts (kiosk/codes.py documents the formats).
    Checked here with kiosk.codes' own rules, so what loads is what CheckIn can use."""

    e_licence_hosts: list[TrustedHost] = Field(description="trusted hosts of e-licence links, "
                                               "e.g. zwfw.example.gov.cn")
    e_licence_prefixes: list[str]
    e_id_hosts: list[TrustedHost] = Field(description="trusted hosts of e-ID (网证) links")
    e_id_prefixes: list[str]
    appointment_prefix: str
    max_length: int = Field(ge=64, le=8192)

    @model_validator(mode="after")
    def _usable_rules(self) -> CodesSection:
        CodeRules.from_mapping(self.model_dump())  # the rules across keys (overlapping prefixes, ...)
        return self


class MaintenanceSection(_Section):
    """The kiosk's maintenance screen (kiosk/maintenance.py): who may open it, and its audit log.
    Credentials are stored only as salted hashes (`python -m kiosk.maintenance hash-pin`)."""

    pin_hash: str = Field(pattern=r"^$|^pbkdf2_sha256\$[0-9]+\$[0-9a-f]{64}$",
                          description="the technician PIN's hash; empty: PIN login disabled")
    technician_cards: list[str] = Field(description="hashes of technicians' card ID numbers "
                                        "(`python -m kiosk.maintenance hash-card`)")
    salt: str = Field(description="salt of the PIN and card hashes; at least 16 characters when any is set")
    max_failures: int = Field(ge=1, le=20, description="failed logins in a row before the lockout")
    lockout_minutes: float = Field(gt=0, le=1440)
    idle_minutes: float = Field(gt=0, le=240, description="the open maintenance screen closes itself after this")
    pin_pad_timeout_s: float = Field(gt=0, le=600, description="the PIN pad closes itself after this")
    audit_file: str = Field(min_length=1, description="JSON lines, inside terminal.data_dir when relative")

    @field_validator("technician_cards")
    @classmethod
    def _card_hashes(cls, cards: list[str]) -> list[str]:
        for card in cards:
            if not re.fullmatch(r"pbkdf2_sha256\$[0-9]+\$[0-9a-f]{64}", card):
                raise ValueError(f"{card[:24]!r} is not a hash made by `python -m kiosk.maintenance hash-card`")
        return cards

    @model_validator(mode="after")
    def _salted(self) -> "MaintenanceSection":
        if (self.pin_hash or self.technician_cards) and len(self.salt) < 16:
            raise ValueError("a PIN hash or technician cards are set but `salt` is shorter than 16 characters "
                             "(`python -m kiosk.maintenance hash-pin` makes both)")
        return self


class FleetSection(_Section):
    """The fleet channel to the help desk (kiosk/fleet_agent.py, fleet/protocol.py): MQTT 5 over
    TLS with this terminal's own broker account; commands back are signed by the console."""

    enabled: bool = Field(description="connect to the help desk's broker; false: the terminal runs alone")
    broker_host: str
    broker_port: int = Field(ge=1, le=65535)
    ca_file: str = Field(description="the CA that signed the broker's certificate (PEM)")
    tls_server_name: str = Field(description="the name in the broker's certificate; empty: broker_host")
    username: str = Field(description="the terminal's broker account; empty: the terminal id")
    password_file: str = Field(description="owner-only file holding the broker password "
                               "(`python -m fleet add-terminal` writes it)")
    keepalive_s: int = Field(ge=2, le=600, description="MQTT keep-alive; the broker publishes the last "
                             "will (offline) after 1.5 times this without a packet")
    heartbeat_s: float = Field(gt=0, le=3600)
    console_algorithm: Literal["sm2-sm3", "ecdsa-p256-sha256"]
    console_public_key: str = Field(pattern=r"^$|^[0-9a-f]{128,130}$",
                                    description="the console's command-signing key (hex); empty: every "
                                    "command is refused")
    outbox_backlog_alert: int = Field(ge=1, description="queued submissions that raise an alert")
    disk_free_alert_mb: int = Field(ge=0, description="less free space than this on the data disk raises "
                                    "an alert (0: never)")
    platform_check_s: float = Field(gt=0, le=3600, description="how often the platform is asked whether "
                                    "it answers (GET /v1/health)")
    platform_unreachable_alert_s: float = Field(ge=0, le=86400, description="the platform silent this long "
                                                "raises an alert at the help desk")
    screen_mirror_interval_s: float = Field(gt=0, le=60, description="during a call, the mirror is sent on "
                                            "every change and at least this often")
    microphone: str = Field(description="ALSA capture device for help-call audio (e.g. \"default\"); "
                            "empty: no microphone, text only")
    media_camera: str = Field(description="[devices.<name>] camera whose picture the help desk sees in a "
                              "video call; empty: no video")
    speaker: str = Field(description="ALSA output the staff member's voice plays on (a shared dmix device, "
                         "so the kiosk's own speech can play too)")
    ice_servers: list[str] = Field(description="STUN/TURN URLs for calls across NAT; empty: the same network")
    audit_file: str = Field(min_length=1, description="JSON lines of remote commands, inside "
                            "terminal.data_dir when relative")


class LoggingSection(_Section):
    level: Literal["DEBUG", "INFO", "WARNING", "ERROR"]
    file: str


class DeviceSection(BaseModel):
    """Common keys of a device; the rest are the driver's parameters."""

    model_config = ConfigDict(extra="allow", populate_by_name=True)

    device_class: str = Field(alias="class")
    driver: str
    enabled: bool = True
    emulate: bool = False
    emulator: dict[str, Any] = Field(default_factory=dict)

    def driver_params(self) -> dict[str, Any]:
        return dict(self.model_extra or {})


class KioskConfig(_Section):
    terminal: TerminalSection
    ui: UiSection
    visit: VisitSection
    voice: VoiceSection
    platform: PlatformSection
    face: FaceSection
    handout: HandoutSection
    codes: CodesSection
    maintenance: MaintenanceSection
    fleet: FleetSection
    logging: LoggingSection
    devices: dict[str, DeviceSection] = Field(default_factory=dict)
