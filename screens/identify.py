"""The identify screen: asks for the ID card and shows why a card was refused."""
from __future__ import annotations

from pathlib import Path

from kivy.lang import Builder

from screens.base import KioskScreen


class IdentifyScreen(KioskScreen):
    step = "identify"


Builder.load_file(str(Path(__file__).with_name("identify.kv")))
