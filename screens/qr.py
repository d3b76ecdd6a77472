"""A QR code as a Kivy texture: the link a citizen scans when paper cannot be printed."""
from __future__ import annotations

import io

import segno
from kivy.core.image import Image as CoreImage
from kivy.graphics.texture import Texture


def qr_texture(data: str) -> Texture:
    """Crisp at any size: one texel per module, scaled up with nearest-neighbour filtering."""
    buffer = io.BytesIO()
    segno.make(data, error="m", micro=False).save(buffer, kind="png", scale=1, border=4)
    buffer.seek(0)
    texture = CoreImage(buffer, ext="png").texture
    texture.mag_filter = "nearest"
    texture.min_filter = "nearest"
    return texture
