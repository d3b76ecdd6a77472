"""An emulated document camera (高拍仪): the page on its base, served as an IP camera serves it.

The streaming, plugging and frame rate are those of every camera emulator
(devices.camera.emulator.StreamingCameraEmulator: MJPEG over HTTP on 127.0.0.1;
start() returns the URL for the driver's `source`). What it films is a
devices.scanner.document_scene.DocumentScene: the base mat and a test page laid on it,
scriptable from tests, scenario files or a console (`command()`, `help` lists it):

- place(document, angle, tilt, x, y, size), remove();
- blur(), dark(), glare(), cut_off(), hand_moving(), steady(), normal();
- unplug()/replug(), slow(fps) from the shared camera console verbs.

Defaults: 1600x1200 at 10 frames a second, as a 2-megapixel document camera streams;
each state is rendered once and the same frame re-sent (see document_scene), so the
cost per frame is the JPEG encoding only (~15 ms at this size).

Standalone::

    python -m devices.scanner.document_camera_emulator --port 0    # prints url ...
"""
from __future__ import annotations

import argparse
import sys

from devices.camera.emulator import StreamingCameraEmulator, check_stream_settings
from devices.scanner.document_scene import DOCUMENTS, DocumentScene, DocumentSceneError
from devices.emulator_cli import run_standalone

CONSOLE_HELP = f"""emulated document camera (高拍仪): type a command and Enter
  place [DOC] angle=D tilt=D x=F y=F size=F
                        lay a page on the base (DOC: {', '.join(DOCUMENTS)}); angle turns it clockwise,
                        tilt leans the camera, x/y centre and size are fractions of the picture
  remove                take the page away
  blur | dark | glare   out of focus / a dim room / a lamp reflected on the page
  cutoff                push the page partly out of the picture
  moving | steady       a hand moves the page about / lets go of it
  normal                sharp, lit and still again
  status                what the camera sees
  slow FPS              serve FPS frames a second (0: connection open, no frames)
  unplug | replug       the camera goes away / comes back on the same address
  help                  this text"""

_PLACE_KEYS = ("angle", "tilt", "x", "y", "size")


class DocumentCameraEmulator(StreamingCameraEmulator):
    """A document camera on 127.0.0.1 filming a page on its base (see module notes)."""

    def __init__(self, fps: float = 10, width: int = 1600, height: int = 1200, port: int = 0,
                 document: str = "form") -> None:
        check_stream_settings(fps, width, height, port)
        scene = DocumentScene(width, height)
        super().__init__(scene, fps, width, height, port)
        self.scene: DocumentScene
        if document:
            scene.place(document)
        else:
            scene.remove()

    # -- scripting ---------------------------------------------------------------------------------
    def place(self, document: str = "form", angle: float = 0.0, tilt: float = 0.0, x: float = 0.5,
              y: float = 0.5, size: float = 0.88) -> None:
        """Lay a page on the base: sharp, well lit and still."""
        self.scene.place(document, angle, tilt, x, y, size)

    def remove(self) -> None:
        self.scene.remove()

    def blur(self) -> None:
        self.scene.blur()

    def dark(self) -> None:
        self.scene.dark()

    def glare(self) -> None:
        self.scene.glare()

    def cut_off(self) -> None:
        self.scene.cut_off()

    def hand_moving(self) -> None:
        self.scene.hand_moving()

    def steady(self) -> None:
        self.scene.steady()

    def normal(self) -> None:
        self.scene.normal()

    # -- console -----------------------------------------------------------------------------------
    def command(self, line: str) -> str:
        """Carry out one console command (see CONSOLE_HELP); bad input is answered, never raised."""
        words = line.split()
        if not words:
            return ""
        verb, args = words[0].lower(), words[1:]
        simple = {"remove": self.remove, "blur": self.blur, "dark": self.dark, "glare": self.glare,
                  "cutoff": self.cut_off, "cut_off": self.cut_off, "moving": self.hand_moving,
                  "steady": self.steady, "normal": self.normal}
        try:
            if verb == "help":
                return CONSOLE_HELP
            if verb == "status" and not args:
                return self.scene.describe()
            if verb == "place":
                document, values = _place_arguments(args)
                self.place(document, **values)
                return self.scene.describe()
            if verb in simple and not args:
                simple[verb]()
                return self.scene.describe()
            answer = self.stream_command(verb, args)
            if answer is not None:
                return answer
        except (DocumentSceneError, ValueError, TypeError, RuntimeError, OSError) as exc:
            return f"error: {exc}"
        return f"unknown document camera command {line.strip()!r}; type help"


def _place_arguments(args: list[str]) -> tuple[str, dict[str, float]]:
    """`place notice angle=20 size=0.7` -> ("notice", {"angle": 20.0, "size": 0.7})."""
    document = "form"
    values: dict[str, float] = {}
    for arg in args:
        key, sep, value = arg.partition("=")
        if not sep:
            document = arg
            continue
        if key not in _PLACE_KEYS:
            raise ValueError(f"place takes {', '.join(k + '=' for k in _PLACE_KEYS)} not {key}=")
        values[key] = float(value)
    return document, values



def _main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m devices.scanner.document_camera_emulator",
                                     description="Serve an emulated document camera (MJPEG over HTTP on "
                                     "127.0.0.1); type commands on standard input (help lists them).")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--fps", type=float, default=10)
    parser.add_argument("--width", type=int, default=1600)
    parser.add_argument("--height", type=int, default=1200)
    parser.add_argument("--document", default="form")
    args = parser.parse_args(argv)
    return run_standalone(lambda: DocumentCameraEmulator(args.fps, args.width, args.height, args.port, args.document),
                          lambda emu, url: [f"url {url}"],
                          (DocumentSceneError, ValueError, OSError))


if __name__ == "__main__":
    sys.exit(_main())
