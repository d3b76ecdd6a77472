"""Document scanning: SANE test-backend scan times, the document camera's cost per frame, output sizes.

    .venv/bin/python bench/document_scan.py                       # about 20 s
    .venv/bin/python bench/document_scan.py --save artifacts/scans  # also writes pictures to look at

1. SANE (the real test backend through the real driver, scripted by the emulator): time
   of scan() at 150 and 300 dpi, colour and grey, 200 x 200 mm (the test backend's
   whole area), including trimming and the readability check.
2. Document camera at 1600x1200 (frames from the emulator's scene through a JPEG round
   trip at the stream's quality): page detection (with corner refinement),
   straightening, measures, per frame; and a whole scan() through the MJPEG emulator,
   from the call to the page (steady_frames frames at 10 fps).
3. Output: JPEG bytes of a camera page, of a 300 dpi A4 page (colour and grey, sent at
   200 dpi under the 500 KB bound), and a 3-page PDF.

--save writes the emulated camera frame, straightened pages and a SANE scan as PNG/JPEG
(test documents only, no personal data). Prints figures only; asserts nothing.
"""
from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import cv2
import numpy as np

from devices.camera.emulator import JPEG_QUALITY
from devices.scanner import output, page
from devices.scanner.document_camera import DocumentCamera
from devices.scanner.document_camera_emulator import DocumentCameraEmulator
from devices.scanner.document_scene import DocumentScene, render_document
from devices.scanner.sane_driver import SaneScanner
from devices.scanner.sane_emulator import SaneTestEmulator


def ms(values: list[float]) -> str:
    values = sorted(values)
    return f"median {statistics.median(values) * 1000:6.1f} ms, max {values[-1] * 1000:6.1f} ms"


def bench_sane(runs: int, save: Path | None) -> None:
    print("1. SANE test backend, 200 x 200 mm, scan() incl. trimming and readability")
    with SaneTestEmulator() as emulator:
        for resolution in (150, 300):
            for mode in ("Color", "Gray"):
                scanner = SaneScanner("scanner", device="test", config_dir=str(emulator.dir),
                                      resolution=resolution, mode=mode)
                scanner.open()
                times = []
                for _ in range(runs):
                    started = time.perf_counter()
                    scanned = scanner.scan()
                    times.append(time.perf_counter() - started)
                scanner.close()
                h, w = scanned.image.shape[:2]
                print(f"   {resolution:3d} dpi {mode:5s} {w}x{h}: {ms(times)}")
                if save is not None and resolution == 150 and mode == "Color":
                    cv2.imwrite(str(save / "sane_test_grid_150dpi.png"), scanned.image)


def bench_camera_frames(frames: int, save: Path | None) -> None:
    print("2. document camera 1600x1200, per frame")
    scene = DocumentScene(1600, 1200)
    placements = [{"angle": 0.0, "size": 0.88}, {"angle": 20.0, "tilt": 10.0, "size": 0.7},
                  {"angle": -35.0, "tilt": 15.0, "size": 0.62}]
    detect, straighten, measures = [], [], []
    for i in range(frames):
        scene.place("form", **placements[i % len(placements)])
        _, jpeg = cv2.imencode(".jpg", scene.render(), [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY])
        frame = cv2.imdecode(jpeg, cv2.IMREAD_COLOR)
        t0 = time.perf_counter()
        outline = page.find_page(frame)
        t1 = time.perf_counter()
        assert outline is not None
        flat = page.correct_perspective(frame, outline.corners)
        t2 = time.perf_counter()
        page.judge(page.measure(flat), page.CAMERA_LIMITS, outline)
        t3 = time.perf_counter()
        detect.append(t1 - t0)
        straighten.append(t2 - t1)
        measures.append(t3 - t2)
        if save is not None and i < len(placements):
            cv2.imwrite(str(save / f"camera_frame_{i}.jpg"), frame)
            cv2.imwrite(str(save / f"camera_page_{i}.png"), flat)
    total = [a + b + c for a, b, c in zip(detect, straighten, measures)]
    print(f"   detect page (800-wide copy + edge refinement): {ms(detect)}")
    print(f"   straighten to A4:                              {ms(straighten)}")
    print(f"   readability measures:                          {ms(measures)}")
    print(f"   together:                                      {ms(total)}")
    for state in ("blur", "dark", "glare", "cut_off"):
        scene.place("form", angle=10.0, size=0.75)
        getattr(scene, state)()
        if save is not None:
            cv2.imwrite(str(save / f"camera_frame_{state}.jpg"), scene.render())


def bench_camera_scan(runs: int) -> None:
    with DocumentCameraEmulator() as emulator:
        camera = DocumentCamera("doccam", source=emulator.url)
        camera.open()
        times = []
        for i in range(runs):
            emulator.place("form", angle=3.0 * i, size=0.8)
            time.sleep(0.3)  # let the stream catch up with the new placement
            started = time.perf_counter()
            camera.scan()
            times.append(time.perf_counter() - started)
        camera.close()
    print(f"   whole scan() through MJPEG at 10 fps, page already still: {ms(times)}")


def bench_output(save: Path | None) -> None:
    print("3. output sizes")
    scene = DocumentScene(1600, 1200)
    scene.place("form", angle=15.0, size=0.8)
    _, jpeg = cv2.imencode(".jpg", scene.render(), [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY])
    frame = cv2.imdecode(jpeg, cv2.IMREAD_COLOR)
    outline = page.find_page(frame)
    assert outline is not None
    flat = page.correct_perspective(frame, outline.corners)
    camera_dpi = page.effective_dpi(flat)
    data = output.page_jpeg(flat, camera_dpi)
    print(f"   camera page {flat.shape[1]}x{flat.shape[0]} ({camera_dpi:.0f} dpi), auto colour: {len(data) / 1000:.0f} KB")
    rng = np.random.default_rng(1)
    for document in ("form", "notice"):
        a4 = cv2.resize(render_document(document), (2480, 3508), interpolation=cv2.INTER_CUBIC)
        a4 = np.clip(a4 + rng.normal(0, 5, a4.shape), 0, 255).astype(np.uint8)  # paper texture, noise
        for colour in (None, False, True):
            started = time.perf_counter()
            data = output.page_jpeg(a4, 300, colour=colour)
            took = time.perf_counter() - started
            label = {None: "auto", False: "grey", True: "colour"}[colour]
            print(f"   A4 300 dpi {document:6s} -> 200 dpi {label:6s}: {len(data) / 1000:4.0f} KB in {took * 1000:.0f} ms")
            if save is not None and colour is None:
                (save / f"a4_{document}_200dpi.jpg").write_bytes(data)
    pages = [output.page_jpeg(render_document(d), 150) for d in ("form", "notice", "form")]
    started = time.perf_counter()
    pdf = output.pages_pdf(pages)
    took = time.perf_counter() - started
    print(f"   3-page PDF of 150 dpi pages: {len(pdf) / 1000:.0f} KB (JPEGs {sum(map(len, pages)) / 1000:.0f} KB) "
          f"in {took * 1000:.1f} ms")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("-n", "--runs", type=int, default=5, help="scans per SANE setting and camera scans")
    parser.add_argument("--frames", type=int, default=30, help="camera frames to time")
    parser.add_argument("--save", type=Path, default=None, help="directory for pictures to look at")
    args = parser.parse_args()
    if args.save is not None:
        args.save.mkdir(parents=True, exist_ok=True)
    bench_sane(args.runs, args.save)
    bench_camera_frames(args.frames, args.save)
    bench_camera_scan(args.runs)
    bench_output(args.save)
    return 0


if __name__ == "__main__":
    sys.exit(main())
