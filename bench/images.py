"""Deterministic, photo-like test images.

Not pure noise (which no photo is, and which makes JPEG decoding unrealistically slow): a smooth
colour field (random low-resolution colours upsampled bicubically, two octaves), 120 flat shapes
(ellipses, rectangles, triangles) softened by a small Gaussian blur, and a fine grey texture
(6-pixel octave plus 50% per-pixel grain) blended at 15%. A 6000x4000 q90 JPEG of it weighs about
6.7 MB (2.3 bits per pixel, like a real camera JPEG). Every byte comes from `random.Random(seed)`,
so the same Pillow version makes the same file. Files are cached under WORK_DIR/inputs.
"""
import hashlib
import random

from PIL import Image, ImageDraw, ImageFilter

from bench.common import WORK_DIR

INPUTS_DIR = WORK_DIR / "inputs"


def _octave(rnd, width, height, cell, mode="RGB"):
    small_w, small_h = max(2, width // cell), max(2, height // cell)
    raw = rnd.randbytes(small_w * small_h * len(mode))
    return Image.frombytes(mode, (small_w, small_h), raw).resize((width, height), Image.Resampling.BICUBIC)


def photo(width, height, seed=1):
    rnd = random.Random(seed)
    base = _octave(rnd, width, height, max(2, width // 8))
    base = Image.blend(base, _octave(rnd, width, height, max(2, width // 60)), 0.25)
    draw = ImageDraw.Draw(base)
    scale = min(width, height)
    for _ in range(120):
        cx, cy = rnd.randrange(width), rnd.randrange(height)
        r = rnd.randrange(max(1, scale // 60), max(2, scale // 8))
        colour = tuple(rnd.randrange(256) for _ in range(3))
        kind = rnd.randrange(3)
        if kind == 0:
            draw.ellipse((cx - r, cy - r * 0.7, cx + r, cy + r * 0.7), fill=colour)
        elif kind == 1:
            draw.rectangle((cx - r, cy - r // 2, cx + r, cy + r // 2), fill=colour)
        else:
            draw.polygon([(cx + rnd.randint(-r, r), cy + rnd.randint(-r, r)) for _ in range(3)], fill=colour)
    base = base.filter(ImageFilter.GaussianBlur(2))
    texture = _octave(rnd, width, height, 6, "L")
    grain = Image.frombytes("L", (width, height), rnd.randbytes(width * height))
    detail = Image.blend(texture, grain, 0.5)
    return Image.blend(base, Image.merge("RGB", (detail, detail, detail)), 0.15)


def input_file(width, height, fmt="jpeg", quality=90, seed=1):
    """Path of the cached test image (created on first use)."""
    INPUTS_DIR.mkdir(parents=True, exist_ok=True)
    ext = {"jpeg": "jpg", "png": "png"}[fmt]
    suffix = f"q{quality}" if fmt == "jpeg" else "c6"
    path = INPUTS_DIR / f"photo-{width}x{height}-s{seed}-{suffix}.{ext}"
    if not path.exists():
        image = photo(width, height, seed)
        tmp = path.with_suffix(".part")
        if fmt == "jpeg":
            image.save(tmp, "JPEG", quality=quality)
        else:
            image.save(tmp, "PNG", compress_level=6)
        tmp.replace(path)
    return path


def digest(path):
    return hashlib.sha256(path.read_bytes()).hexdigest()[:16]


def standard_photo():
    """The issue's standard task input: 6000x4000 photo-like JPEG q90."""
    return input_file(6000, 4000, "jpeg", 90, seed=1)


def latency_photo():
    """4000x3000 JPEG q90 (latency and throughput benchmarks)."""
    return input_file(4000, 3000, "jpeg", 90, seed=3)


def png_square():
    """1000x1000 PNG (grayscale/blur/sharpen benchmark)."""
    return input_file(1000, 1000, "png", seed=2)


def small_photo():
    """640x480 JPEG q85 (burst benchmark: many uploads)."""
    return input_file(640, 480, "jpeg", 85, seed=4)
