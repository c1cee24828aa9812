"""Side-by-side previews of a rendering: RGB | depth (near = dark) | instance masks overlay."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from training.data import depth as depth_codec
from training.synth.render import Rendering


def mask_overlay(rgb: np.ndarray, instances: np.ndarray, alpha: float = 0.5) -> np.ndarray:
    """Each instance in its own colour over the RGB image, with darker outlines."""
    palette = np.random.default_rng(7).integers(40, 256, size=(256, 3)).astype(np.float32)
    palette[0] = 0
    colour = palette[instances]
    out = rgb.astype(np.float32)
    inside = instances > 0
    out[inside] = (1 - alpha) * out[inside] + alpha * colour[inside]
    edge = np.zeros_like(inside)
    edge[:, 1:] |= instances[:, 1:] != instances[:, :-1]
    edge[1:, :] |= instances[1:, :] != instances[:-1, :]
    out[edge] *= 0.3
    return out.clip(0, 255).astype(np.uint8)


def save_preview(path: Path, rendering: Rendering, scale: float = 1.0) -> Path:
    depth = rendering.depth
    gray = depth_codec.encode_u8(depth, float(depth.min()), float(depth.max()))
    panels = [
        rendering.rgb,
        np.repeat(gray[..., None], 3, axis=2),
        mask_overlay(rendering.rgb, rendering.instances),
    ]
    image = Image.fromarray(np.concatenate(panels, axis=1))
    if scale != 1.0:
        image = image.resize(
            (int(image.width * scale), int(image.height * scale)), Image.Resampling.BILINEAR
        )
    path.parent.mkdir(parents=True, exist_ok=True)
    image.save(path, optimize=True)
    return path
