"""Any decoded image into one of the working modes (L, LA, RGB, RGBA) that every transform expects.

Palettes are expanded (their transparency becomes alpha), 16-bit and 32-bit samples are scaled to 8
bits (16-bit by value / 257, floats in 0..1 by x 255, anything else stretched from its minimum to
its maximum), CMYK and CIELAB become sRGB (through the embedded ICC profile when there is one).
"""
import io

from PIL import ImageCms

WORKING_MODES = ("L", "LA", "RGB", "RGBA")


def to_working_mode(image, icc_profile):
    """The image in L, LA, RGB or RGBA, and the ICC profile that still describes it."""
    mode = image.mode
    if mode in WORKING_MODES and "transparency" not in image.info:
        return image, icc_profile
    if mode.startswith("I") or mode == "F":
        return _to_8_bits(image), icc_profile
    if mode in ("CMYK", "LAB"):
        return _to_srgb(image, icc_profile), None
    has_alpha = image.has_transparency_data
    if mode in ("1", "L", "LA", "La"):
        return image.convert("LA" if has_alpha else "L"), icc_profile
    return image.convert("RGBA" if has_alpha else "RGB"), icc_profile


def _to_8_bits(image):
    """16-bit (I;16*), 32-bit integer (I) or float (F) samples as 8-bit L (LA with a tRNS colour)."""
    alpha = image.convert("LA").getchannel("A") if "transparency" in image.info else None
    if image.mode.startswith("I;16"):
        grey = image.point(lambda value: value / 257).convert("L")  # within 0..255 now: nothing clips
    else:
        low, high = image.getextrema()
        if image.mode == "F" and 0 <= low and high <= 1:
            scale, offset = 255.0, 0.0
        elif image.mode == "I" and 0 <= low and high <= 65535:
            scale, offset = 1 / 257, 0.0
        else:
            scale = 255.0 / (high - low) if high > low else 0.0
            offset = -low * scale
        grey = image.point(lambda value: value * scale + offset).convert("L")
    if alpha is not None:
        grey.putalpha(alpha)
    return grey


def _to_srgb(image, icc_profile):
    """CMYK or CIELAB pixels as sRGB, through the embedded profile (or the CIELAB one) when possible;
    Pillow's plain conversion otherwise."""
    try:
        if icc_profile:
            source_profile = ImageCms.ImageCmsProfile(io.BytesIO(icc_profile))
        elif image.mode == "LAB":
            source_profile = ImageCms.createProfile("LAB")
        else:
            return image.convert("RGB")
        transform = ImageCms.buildTransform(source_profile, ImageCms.createProfile("sRGB"), image.mode, "RGB")
        return ImageCms.applyTransform(image, transform)
    except (ImageCms.PyCMSError, OSError, ValueError, TypeError):
        return image.convert("RGB")
