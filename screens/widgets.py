"""Widgets shared by every screen: big buttons, wrapped labels, the notice box, icons.

Their look lives in `widgets.kv`; sizes and colours come from the app's Theme.
"""
from __future__ import annotations

from pathlib import Path

from kivy.lang import Builder
from kivy.properties import ListProperty, OptionProperty, StringProperty
from kivy.uix.behaviors import ButtonBehavior
from kivy.uix.boxlayout import BoxLayout
from kivy.uix.label import Label
from kivy.uix.widget import Widget

from screens.theme import Theme

_VARIANTS = {
    # variant: (background, background pressed, text, border)
    "primary": (Theme.blue, Theme.blue_dark, Theme.white, Theme.blue),
    "accent": (Theme.red, Theme.red_dark, Theme.white, Theme.red),
    "secondary": (Theme.white, Theme.blue_soft, Theme.blue, Theme.blue),
    "quiet": (Theme.white, Theme.panel, Theme.text, Theme.line),
    "on_dark": (Theme.blue, Theme.blue_dark, Theme.white, Theme.white),
}


class KioskButton(ButtonBehavior, Label):
    """A large, high-contrast button with a visible pressed state."""

    variant = OptionProperty("primary", options=list(_VARIANTS))
    action = StringProperty("")  # what it does, e.g. "start": names it for touch targets
    bg = ListProperty(Theme.blue)
    bg_down = ListProperty(Theme.blue_dark)
    fg = ListProperty(Theme.white)
    edge = ListProperty(Theme.blue)

    def __init__(self, **kwargs: object) -> None:
        super().__init__(**kwargs)
        self.on_variant(self, self.variant)

    def on_variant(self, _instance: object, variant: str) -> None:
        self.bg, self.bg_down, self.fg, self.edge = (list(c) for c in _VARIANTS[variant])


class ServiceButton(KioskButton):
    """One service on the choose screen; remembers which service it stands for."""

    service_id = StringProperty("")


class WrapLabel(Label):
    """A label that wraps to its width and is as tall as its text."""


class Notice(BoxLayout):
    """A notice on a step (card expired, reader offline, take your card); hidden when empty."""

    text = StringProperty("")


class CheckIcon(Widget):
    """A round tick for "done"."""


class CardIllustration(Widget):
    """An ID card being laid on the reader: shows where the card goes."""


Builder.load_file(str(Path(__file__).with_name("widgets.kv")))
