"""Widgets shared by every screen: big buttons, wrapped labels, the notice box, icons.

Their look lives in `widgets.kv`; sizes and colours come from the app's Theme.
"""
from __future__ import annotations

from pathlib import Path
from typing import Callable, TypeVar

from kivy.lang import Builder
from kivy.properties import BooleanProperty, ListProperty, NumericProperty, OptionProperty, StringProperty
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
    "quiet": (Theme.white, Theme.panel, Theme.text, Theme.line_standard),
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


class ChipButton(KioskButton):
    """A filter on the choose screen; the chosen one is filled and marked, not only coloured."""

    chosen = BooleanProperty(False)
    kind = StringProperty("")
    value = StringProperty("")

    def on_chosen(self, _instance: object, chosen: bool) -> None:
        self.variant = "primary" if chosen else "secondary"

    def on_text(self, *_args: object) -> None:
        self._fit()

    def on_font_size(self, *_args: object) -> None:
        self._fit()

    def _fit(self) -> None:
        """As wide as its words (measured once per change, not bound to its own texture: a width
        that follows the texture that follows the width never settles)."""
        from kivy.core.text import Label as CoreLabel

        measure = CoreLabel(text=self.text or " ", font_size=self.font_size, font_name=self.font_name)
        measure.refresh()
        self.width = measure.texture.size[0] + 2.5 * self.font_size


class Tag(Label):
    """A short word beside a label (必填, 来自身份证), boxed so it reads without colour."""


class SectionLabel(Label):
    """A heading inside a screen (办理流程, 申请材料)."""


class WrapLabel(Label):
    """A label that wraps to its width and is as tall as its text."""


class Notice(BoxLayout):
    """A notice on a step (card expired, reader offline, take your card); hidden when empty."""

    text = StringProperty("")


class CheckIcon(Widget):
    """A round tick for "done"."""


class CardIllustration(Widget):
    """An ID card being laid on the reader, over and over while the screen asks for it: shows
    where the card goes and that it is laid down flat, not waved."""

    lift = NumericProperty(0)  # how far above the reader the card floats now (pixels)

    def play(self) -> None:
        from kivy.animation import Animation

        self.stop()
        high = self.height * 0.22
        self.lift = high
        anim = (Animation(lift=0, duration=1.2, t="out_quad") + Animation(duration=1.0)
                + Animation(lift=high, duration=0.6, t="in_out_quad"))
        anim.repeat = True
        anim.start(self)

    def stop(self) -> None:
        from kivy.animation import Animation

        Animation.cancel_all(self, "lift")
        self.lift = 0


Builder.load_file(str(Path(__file__).with_name("widgets.kv")))


W = TypeVar("W", bound=Widget)


def show_pooled(container: Widget, pool: list[W], count: int, make: Callable[[], W]) -> list[W]:
    """The first `count` widgets of `pool` (made when missing), attached to `container` in order;
    the rest detached. Screens live for months: rows are reused, never rebuilt per visit."""
    while len(pool) < count:
        pool.append(make())
    for n, widget in enumerate(pool):
        if n < count and widget.parent is None:
            container.add_widget(widget)
        elif n >= count and widget.parent is not None:
            container.remove_widget(widget)
    return pool[:count]


def actionable(top: Widget, visible: Callable[[Widget], bool] = lambda _w: True) -> dict[str, Widget]:
    """Visible, enabled widgets with an `action` under `top`, by action."""
    found: dict[str, Widget] = {}
    for widget in top.walk(restrict=True):
        action = getattr(widget, "action", "")
        if action and widget.opacity != 0 and not widget.disabled and widget.height > 0 and visible(widget):
            found[action] = widget
    return found


def touch_targets_in(top: Widget, visible: Callable[[Widget], bool] = lambda _w: True) -> dict[str, tuple[int, int]]:
    """The actionable widgets' centres as (x, y) window pixels from the top-left corner: what a
    test, the bench or a remote helper touches to drive the kiosk."""
    from kivy.core.window import Window

    found: dict[str, tuple[int, int]] = {}
    for action, widget in actionable(top, visible).items():
        x, y = widget.to_window(widget.center_x, widget.center_y)
        found[action] = (int(x), int(Window.height - y))
    return found


def widget_for_action(app: object, action: str) -> Widget | None:
    """The widget a touch on `action` would reach, on the app's topmost layer."""
    layer = app.touch_layer()  # type: ignore[attr-defined]
    return actionable(*layer).get(action)
