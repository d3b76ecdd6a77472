"""The face screen: the live camera picture and what to do (a hint or a challenge).

The picture comes from the controller (`camera_frame()`), drawn ten times a second
while the screen is shown; the texture is dropped when the visit leaves the step, so no
image of the citizen stays in the widgets.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

from kivy.clock import Clock
from kivy.graphics.texture import Texture
from kivy.lang import Builder
from kivy.properties import ObjectProperty

from screens.base import KioskScreen

PREVIEW_FPS = 10


class FaceScreen(KioskScreen):
    step = "face"

    preview = ObjectProperty(None, allownone=True)  # a Texture, or None before the first frame

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._refresh: Any = None

    def on_enter(self, *args: Any) -> None:
        self._refresh = Clock.schedule_interval(self._draw, 1 / PREVIEW_FPS)

    def on_leave(self, *args: Any) -> None:
        if self._refresh is not None:
            self._refresh.cancel()
            self._refresh = None
        self.preview = None

    def _draw(self, _dt: float) -> None:
        frame = getattr(self.controller, "camera_frame", lambda: None)()
        if frame is None:
            return
        height, width = frame.shape[:2]
        texture = self.preview
        if texture is None or texture.size != (width, height):
            texture = Texture.create(size=(width, height), colorfmt="bgr")
            texture.flip_vertical()  # camera rows run top-down, OpenGL's bottom-up
        texture.blit_buffer(frame.tobytes(), colorfmt="bgr", bufferfmt="ubyte")
        self.preview = texture
        self.ids.picture.canvas.ask_update()

    def clear(self) -> None:
        super().clear()
        self.preview = None


Builder.load_file(str(Path(__file__).with_name("face.kv")))
