"""Second-generation ID-card readers: interface, SAM serial driver (GA/T 467), emulator.

Import the driver and emulator modules directly (devices.idcard.driver,
devices.idcard.emulator); this package exports the model and interface, which need
no serial library.
"""
from devices.idcard.identity import (
    CARD_TYPES,
    LONG_TERM,
    VALIDITY_PROBLEMS,
    CardDataError,
    IdentityCard,
    InvalidIdNumber,
    decode_text_block,
    encode_text_block,
    id_check_digit,
    mask_id_number,
    validate_id_number,
)
from devices.idcard.interface import CARD_PLACED, CARD_REMOVED, IdCardReader
from devices.idcard.photo import PhotoDecodeError, PhotoDecoder, PhotoDecoderUnavailable

__all__ = [
    "CARD_PLACED",
    "CARD_REMOVED",
    "CARD_TYPES",
    "LONG_TERM",
    "VALIDITY_PROBLEMS",
    "CardDataError",
    "IdCardReader",
    "IdentityCard",
    "InvalidIdNumber",
    "PhotoDecodeError",
    "PhotoDecoder",
    "PhotoDecoderUnavailable",
    "decode_text_block",
    "encode_text_block",
    "id_check_digit",
    "mask_id_number",
    "validate_id_number",
]

_LAZY = {
    "SamSerialReader": "devices.idcard.driver",
    "SamEmulator": "devices.idcard.emulator",
}


def __getattr__(name: str) -> object:
    """Driver and emulator on first use, so importing the model needs no pyserial."""
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
