"""One theme for every screen: colours and sizes that scale with the window.

Sizes are designed for a 1280 x 800 window and scaled by the smaller of the two window
ratios, so a 1920 x 1080 kiosk gets proportionally larger type and touch targets.
Type sizes are pixels at that reference size (= sp on a density-1 screen); they also
follow Kivy's font scale (an accessibility setting) so a technician can enlarge text.

Readability for elderly users (at 1280 x 800): body text >= 30 px, titles >= 52 px,
line spacing >= 1.3, touch targets >= 80 px high (ordinary buttons 104 px), dark text
on white (contrast well above WCAG AA 4.5:1).

Elder mode (长辈模式, `elder = True`) goes further: type 1.2 times larger, line spacing
1.5, every text in near-black (soft greys become the body colour, 16:1) and darker lines.
"""
from __future__ import annotations

from kivy.event import EventDispatcher
from kivy.metrics import Metrics
from kivy.properties import BooleanProperty, ListProperty, NumericProperty

REFERENCE_SIZE = (1280, 800)


def rgba(hex_colour: str, alpha: float = 1.0) -> tuple[float, float, float, float]:
    h = hex_colour.lstrip("#")
    return (int(h[0:2], 16) / 255, int(h[2:4], 16) / 255, int(h[4:6], 16) / 255, alpha)


class Theme(EventDispatcher):
    # -- colours: deep government blue, white, red and gold used sparingly --------------
    blue = rgba("#0B3A82")  # header band, primary buttons
    blue_dark = rgba("#082C63")  # pressed primary
    blue_title = rgba("#0A2A5E")  # titles on white
    blue_soft = rgba("#E8EEF8")  # pressed secondary, light panels
    gold = rgba("#C9A227")  # the thin line under the header
    red = rgba("#B71C1C")  # the one call to action on the attract screen
    red_dark = rgba("#8E1515")
    white = rgba("#FFFFFF")
    page = rgba("#FFFFFF")
    panel = rgba("#F4F6FA")  # footer bar, table stripes
    text = rgba("#1B1F24")  # body text (contrast 16:1 on white)
    text_soft_standard = rgba("#3D4654")  # prompts, labels (contrast 9.6:1 on white)
    line_standard = rgba("#CBD3E1")
    notice_bg = rgba("#FFF4DC")
    notice_edge = rgba("#C77700")
    notice_text = rgba("#4A2F00")
    ok = rgba("#1E7B34")
    shade = rgba("#000000", 0.55)  # behind the idle warning

    # what elder mode changes, as properties the layouts bind to
    elder = BooleanProperty(False)
    line_height = NumericProperty(1.35)
    text_soft = ListProperty(rgba("#3D4654"))
    line = ListProperty(rgba("#CBD3E1"))
    ELDER_TYPE = 1.2  # elder mode's type size factor
    ELDER_LINE_HEIGHT = 1.5

    # -- sizes (pixels at 1280 x 800; see the module docstring) --------------------------
    scale = NumericProperty(1.0)
    hero = NumericProperty(88)  # the attract title
    title = NumericProperty(52)
    subtitle = NumericProperty(34)
    body = NumericProperty(30)
    button = NumericProperty(38)
    header_font = NumericProperty(30)
    header_h = NumericProperty(104)
    footer_h = NumericProperty(136)
    touch_h = NumericProperty(104)  # the height of ordinary buttons
    pad = NumericProperty(40)
    gap = NumericProperty(24)
    radius = NumericProperty(12)

    _BASE = {"hero": 88, "title": 52, "subtitle": 34, "body": 30, "button": 38}
    # elder-mode floors: small windows shrink boxes, never text below these
    _MIN = {"hero": 56, "title": 40, "subtitle": 30, "body": 28, "button": 30}
    _BOXES = {"header_h": 104, "footer_h": 136, "touch_h": 104, "pad": 40, "gap": 24, "radius": 12}

    def fit(self, width: float, height: float) -> None:
        """Scale every size to a window of width x height pixels."""
        scale = max(0.5, min(width / REFERENCE_SIZE[0], height / REFERENCE_SIZE[1]))
        if scale == self.scale:
            self.on_scale(self, scale)  # still apply the font scale
        self.scale = scale

    def on_elder(self, _instance: object, elder: bool) -> None:
        self.line_height = self.ELDER_LINE_HEIGHT if elder else 1.35
        self.text_soft = list(self.text) if elder else list(self.text_soft_standard)
        self.line = list(rgba("#5A6578")) if elder else list(self.line_standard)
        self.on_scale(self, self.scale)

    def on_scale(self, _instance: object, scale: float) -> None:
        fontscale = (Metrics.fontscale or 1.0) * (self.ELDER_TYPE if self.elder else 1.0)
        for name, base in self._BASE.items():
            setattr(self, name, max(round(base * scale * fontscale), self._MIN[name]))
        # A label styled by two rules (WrapLabel's body size and TitleLabel's title size) is
        # bound to both sizes and takes whichever changed last: tell every size again, the
        # general one first, so the more specific size is the one that stays.
        # The header's buttons keep their size in elder mode: six of them must fit one row.
        self.header_font = max(round(self._BASE["body"] * scale * (Metrics.fontscale or 1.0)), self._MIN["body"])
        for name in ("body", "button", "header_font", "subtitle", "title", "hero"):
            self.property(name).dispatch(self)
        for name, base in self._BOXES.items():
            setattr(self, name, round(base * scale))
