"""The help desk's pointer: a pulsing ring drawn over everything at the place a staff member
pointed at on the kiosk's screen, for a few seconds, then it fades.

The place comes as fractions of the window from the TOP-LEFT corner (what the console sees of
the screen); Kivy counts y from the bottom, so the ring flips it. The ring takes no touches:
a citizen touching the button under it reaches the button.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

from kivy.animation import Animation
from kivy.clock import Clock
from kivy.lang import Builder
from kivy.properties import BooleanProperty, NumericProperty
from kivy.uix.widget import Widget

SHOW_S = 4.0  # how long the ring pulses before it fades
FADE_S = 0.6
PULSE_S = 0.9  # one pulse: the outer ring grows and fades out
RADIUS = 64  # the steady ring's radius in pixels at 1280 x 800 (scaled with the theme)


def window_point(fx: float, fy: float, width: float, height: float) -> tuple[float, float]:
    """(x, y) fractions from the top-left -> Kivy window pixels (y from the bottom), kept inside
    the window so a point at the very edge still shows a whole half ring."""
    fx = min(1.0, max(0.0, float(fx)))
    fy = min(1.0, max(0.0, float(fy)))
    return fx * width, (1.0 - fy) * height


class PointerRing(Widget):
    """Added to the Window (on top of every screen and layer) while it shows; removed after."""

    pulse = NumericProperty(0.0)  # 0 -> 1 over one pulse: the outer ring's growth and fade
    radius = NumericProperty(RADIUS)
    showing = BooleanProperty(False)  # True from `point` until the fade has ended
    fx = NumericProperty(0.0)  # the place, as fractions from the top-left
    fy = NumericProperty(0.0)

    __events__ = ("on_finished",)

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.size_hint = (None, None)
        self._end_event: Any = None

    def point(self, fx: float, fy: float, scale: float = 1.0) -> None:
        """Show the ring at (fx, fy) (fractions from the top-left) for SHOW_S seconds."""
        from kivy.core.window import Window

        self._stop_animations()
        self.fx, self.fy = min(1.0, max(0.0, float(fx))), min(1.0, max(0.0, float(fy)))
        self.radius = round(RADIUS * scale)
        self.opacity = 1.0
        if self.parent is not None:
            self.parent.remove_widget(self)
        Window.add_widget(self)  # the last one added is drawn on top of all the others
        Window.bind(size=self._place)
        self._place()
        self.pulse = 0.0
        pulse = Animation(pulse=1.0, duration=PULSE_S, t="out_quad") + Animation(pulse=0.0, duration=0)
        pulse.repeat = True
        pulse.start(self)
        self.showing = True
        self._end_event = Clock.schedule_once(self._fade, SHOW_S)

    def hide(self) -> None:
        """Gone at once (the call ended, the visit was wiped)."""
        self._stop_animations()
        self._remove()

    def center_from_top_left(self) -> tuple[float, float]:
        """The ring's centre in window pixels from the top-left (what tests compare)."""
        from kivy.core.window import Window

        return float(self.center_x), float(Window.height - self.center_y)

    # -- inside ------------------------------------------------------------------------------
    def _place(self, *_args: Any) -> None:
        from kivy.core.window import Window

        side = self.radius * 4.4  # room for the outer ring at its widest
        self.size = (side, side)
        self.center = window_point(self.fx, self.fy, Window.width, Window.height)

    def _fade(self, _dt: float) -> None:
        self._end_event = None
        fade = Animation(opacity=0.0, duration=FADE_S)
        fade.bind(on_complete=lambda *_a: self._finish())
        fade.start(self)

    def _finish(self) -> None:
        Animation.cancel_all(self)
        self._remove()

    def _stop_animations(self) -> None:
        Animation.cancel_all(self)
        if self._end_event is not None:
            self._end_event.cancel()
            self._end_event = None

    def _remove(self) -> None:
        from kivy.core.window import Window

        Window.unbind(size=self._place)
        if self.parent is not None:
            self.parent.remove_widget(self)
        if self.showing:
            self.showing = False
            self.dispatch("on_finished")

    def on_finished(self) -> None:
        """The ring is gone (faded or hidden)."""

    # a pointer is only a drawing: touches go to what is under it
    def on_touch_down(self, touch: Any) -> bool:
        return False

    def on_touch_move(self, touch: Any) -> bool:
        return False

    def on_touch_up(self, touch: Any) -> bool:
        return False


Builder.load_file(str(Path(__file__).with_name("pointer.kv")))
