"""QR codes: zxing-cpp decode time per camera frame, and scan-to-event latency. Prints; never asserts.

    .venv/bin/python bench/qr_decode.py                 # all three parts
    .venv/bin/python bench/qr_decode.py -n 50 --skip-camera

1. Decoding: frames of the QR camera emulator's scene (a phone showing a 90-character
   e-licence link: straight, turned 30 degrees, tilted 35 degrees, far away, and no code
   at all), JPEG-compressed at quality 85 as the MJPEG stream does, at 640x480 and
   1280x720. Each is decoded with zxing-cpp restricted to QR as CameraQrScanner does
   (grey picture, flipped back from the mirror), and with every format zxing-cpp reads
   (on the BGR picture, as a naive caller would). "read" says in how many of the frames
   the code was found.
2. Serial: from SerialQrEmulator.scan() to the code_scanned event of the real
   SerialQrScanner over a pty, each code after a short idle pause: unpaced (host side
   only: emulator thread, pty, reader thread, decoding, arming), and paced like a 9600
   baud 8N1 line, beside that line's lower bound (10 bits a byte).
3. Camera: from QrCameraEmulator.show() to the code_scanned event of CameraQrScanner
   through the MJPEG stream at 15 frames a second, decode interval 0.1 s (frame pacing,
   JPEG, FFmpeg demux, grabber, decode worker).
"""
from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import threading
import time
from importlib import metadata
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import cv2  # noqa: E402
import numpy as np  # noqa: E402
import zxingcpp  # noqa: E402

from devices.base import DeviceEvent  # noqa: E402
from devices.qr_scanner.camera_driver import CameraQrScanner, decode_qr  # noqa: E402
from devices.qr_scanner.camera_emulator import PhoneQrScene, QrCameraEmulator  # noqa: E402
from devices.qr_scanner.interface import CODE_SCANNED  # noqa: E402
from devices.qr_scanner.serial_driver import SerialQrScanner  # noqa: E402
from devices.qr_scanner.serial_emulator import SerialQrEmulator  # noqa: E402

LINK = "https://zwfw.example.gov.cn/dzzz/v1/licence?id=1.2.156.3005.2.11100000000013338W.11MB0174370.001"
POSES = {
    "straight": {},
    "turned 30": {"angle": 30.0},
    "tilted 35": {"tilt": 35.0},
    "far (0.6)": {"scale": 0.6},
}


def ms(values: list[float]) -> str:
    values = sorted(values)
    p95 = values[min(len(values) - 1, round(0.95 * (len(values) - 1)))]
    return f"median {statistics.median(values) * 1000:7.2f} ms  p95 {p95 * 1000:7.2f} ms"


def frames(width: int, height: int) -> dict[str, np.ndarray]:
    scene = PhoneQrScene(width, height)
    out = {}
    for name, pose in POSES.items():
        scene.show(LINK, **pose)
        out[name] = scene.render()
    scene.hide()
    out["no code"] = scene.render()
    for name, picture in out.items():  # through JPEG, as the stream delivers them, then mirrored
        _, jpeg = cv2.imencode(".jpg", picture, [cv2.IMWRITE_JPEG_QUALITY, 85])
        decoded = cv2.imdecode(jpeg, cv2.IMREAD_COLOR)
        assert decoded is not None
        out[name] = cv2.flip(decoded, 1)
    return out


def bench_decode(n: int) -> None:
    print("1. zxing-cpp decode time per frame")
    for width, height in ((640, 480), (1280, 720)):
        pictures = frames(width, height)
        qr_times: list[float] = []
        all_times: list[float] = []
        qr_found = all_found = 0
        for name, picture in pictures.items():
            for _ in range(n):
                t = time.perf_counter()
                got = decode_qr(picture, mirrored=True)
                qr_times.append(time.perf_counter() - t)
                t = time.perf_counter()
                got_all = zxingcpp.read_barcodes(cv2.flip(picture, 1))
                all_times.append(time.perf_counter() - t)
            if name != "no code":
                qr_found += any(b.text == LINK for b in got)
                all_found += any(b.text == LINK for b in got_all)
        with_code = len(pictures) - 1
        print(f"  {width}x{height}  QR only:     {ms(qr_times)}  read {qr_found}/{with_code}")
        print(f"  {width}x{height}  all formats: {ms(all_times)}  read {all_found}/{with_code}")
        for name, picture in pictures.items():
            times = []
            for _ in range(n):
                t = time.perf_counter()
                decode_qr(picture, mirrored=True)
                times.append(time.perf_counter() - t)
            print(f"      QR only, {name:10s} {ms(times)}")


class Arrivals:
    def __init__(self) -> None:
        self.at: dict[str, float] = {}
        self.cond = threading.Condition()

    def __call__(self, event: DeviceEvent) -> None:
        if event.kind == CODE_SCANNED:
            with self.cond:
                self.at[event.data["text"]] = time.perf_counter()
                self.cond.notify_all()

    def wait(self, text: str, timeout: float = 10.0) -> float:
        with self.cond:
            if not self.cond.wait_for(lambda: text in self.at, timeout):
                raise TimeoutError(f"no event for {text!r} within {timeout} s")
            return self.at[text]


def bench_serial(n: int) -> None:
    print("2. serial scan() -> code_scanned over a pty")
    code = "YY2606010000426"
    for label, baud in (("unpaced", None), ("9600 baud", 9600)):
        with tempfile.TemporaryDirectory() as tmp, SerialQrEmulator(link=f"{tmp}/qr", baudrate=baud) as emu:
            scanner = SerialQrScanner("qr", port=f"{tmp}/qr")
            arrivals = Arrivals()
            scanner.subscribe(arrivals)
            scanner.open()
            scanner.arm()
            try:
                times = []
                for i in range(n):
                    text = f"{code}-{i:04d}"
                    time.sleep(0.02)  # an idle line between codes: threads asleep, as in the field
                    t = time.perf_counter()
                    emu.scan(text)
                    times.append(arrivals.wait(text) - t)
            finally:
                scanner.close()
        bound = f"  (line lower bound {(len(code) + 6) * 10 / baud * 1000:.1f} ms)" if baud else ""
        print(f"  {label:10s} {len(code) + 5}-byte code + CR: {ms(times)}{bound}")


def bench_camera(n: int) -> None:
    print("3. camera show() -> code_scanned through MJPEG at 15 fps, decode interval 0.1 s")
    emu = QrCameraEmulator(fps=15)
    emu.start()
    try:
        scanner = CameraQrScanner("qr_camera", source=emu.url)
        arrivals = Arrivals()
        scanner.subscribe(arrivals)
        scanner.open()
        scanner.arm()
        try:
            times = []
            for i in range(n):
                text = f"{LINK}&n={i}"
                t = time.perf_counter()
                emu.show(text)
                times.append(arrivals.wait(text) - t)
            print(f"  640x480: {ms(times)}; {scanner.decoded_frames} frames decoded")
        finally:
            scanner.close()
    finally:
        emu.stop()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", type=int, default=20, help="repetitions per measurement")
    parser.add_argument("--skip-camera", action="store_true", help="skip the MJPEG end-to-end part")
    args = parser.parse_args(argv)
    print(f"zxing-cpp {metadata.version('zxing-cpp')}, OpenCV {cv2.__version__}")
    bench_decode(args.n)
    bench_serial(args.n)
    if not args.skip_camera:
        bench_camera(max(5, args.n // 2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
