"""A card over the dimmed screen (the idle warning, help, a list of choices): built once, opened
and closed without animation, and, while open, the only thing a touch can reach."""
from __future__ import annotations

from typing import Any

from kivy.uix.modalview import ModalView


class Layer(ModalView):
    def __init__(self, controller: Any = None, **kwargs: Any) -> None:
        self.controller = controller
        super().__init__(auto_dismiss=False, **kwargs)  # a tap beside it must not close it

    @property
    def is_open(self) -> bool:
        return bool(self._is_open)

    def reveal(self) -> None:
        if not self.is_open:
            self.open(animation=False)

    def hide(self) -> None:
        if self.is_open:
            self.dismiss(animation=False)

    def act(self, action: str, *args: Any) -> None:
        self.controller.act(action, *args)
