"""imaging/transforms/filters.py: OpenCV for small radii gives what Pillow gives, to within what no one can see."""
import numpy as np
import pytest
from PIL import Image, ImageFilter

from imaging.transforms import filters

MODES = ("L", "RGB", "La", "RGBa")


def photo_like(mode, size=(240, 160), seed=3):
    """Smooth shapes plus grain, in every channel of `mode`."""
    rng = np.random.default_rng(seed)
    channels = len(mode)
    coarse = rng.integers(0, 256, (size[1] // 16, size[0] // 16, channels), dtype=np.uint8)
    smooth = np.asarray(Image.fromarray(coarse[:, :, 0]).resize(size, Image.Resampling.BICUBIC), dtype=np.int16)
    layers = [np.roll(smooth, 7 * c, axis=1) + rng.integers(-12, 13, smooth.shape) for c in range(channels)]
    pixels = np.clip(np.stack(layers, axis=-1), 0, 255).astype(np.uint8)
    return Image.fromarray(pixels[:, :, 0] if channels == 1 else pixels, mode)


def difference(a, b):
    diff = np.abs(np.asarray(a, dtype=np.float64) - np.asarray(b, dtype=np.float64))
    return diff.max(), diff.mean()


def exact_gaussian(image, sigma):
    """The Gaussian by its definition, in floating point, edge pixels repeated: the reference."""
    pixels = np.asarray(image, dtype=np.float64)
    reach = int(np.ceil(4 * sigma))
    offsets = np.arange(-reach, reach + 1)
    weights = np.exp(-(offsets ** 2) / (2 * sigma ** 2))
    weights /= weights.sum()
    for axis in (0, 1):
        padding = [(0, 0)] * pixels.ndim
        padding[axis] = (reach, reach)
        padded = np.pad(pixels, padding, mode="edge")
        length = pixels.shape[axis]
        pixels = sum(w * np.take(padded, range(i, i + length), axis=axis) for i, w in enumerate(weights))
    return pixels


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("sigma", (0.5, 2, 6))
def test_blur_is_the_gaussian_to_within_a_level(mode, sigma):
    image = photo_like(mode)
    ours = filters.gaussian_blur(image, sigma)
    assert (ours.mode, ours.size) == (image.mode, image.size)
    worst, mean = difference(ours, exact_gaussian(image, sigma))
    assert worst <= 1.5 and mean < 0.35, (worst, mean)
    # Pillow's box approximation, which small radii used before, is within 3 levels of it.
    assert difference(ours, image.filter(ImageFilter.GaussianBlur(sigma)))[1] < 0.7


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("sigma, amount", ((1, 0.5), (2, 1), (4, 3)))
def test_sharpen_is_the_unsharp_mask_with_threshold_zero(mode, sigma, amount):
    image = photo_like(mode)
    ours = filters.unsharp_mask(image, sigma, amount)
    assert (ours.mode, ours.size) == (image.mode, image.size)
    pixels = np.asarray(image, dtype=np.float64)
    wanted = np.clip(pixels + amount * (pixels - exact_gaussian(image, sigma)), 0, 255)
    worst, mean = difference(ours, wanted)
    assert worst <= 1 + 1.5 * amount and mean < 0.5 * (1 + amount), (worst, mean)


def test_large_radii_are_pillows_own():
    image = photo_like("RGB")
    sigma = filters.OPENCV_MAX_SIGMA + 5
    assert filters.gaussian_blur(image, sigma).tobytes() == image.filter(ImageFilter.GaussianBlur(sigma)).tobytes()
    pillow = image.filter(ImageFilter.UnsharpMask(radius=sigma, percent=150, threshold=0))
    assert filters.unsharp_mask(image, sigma, 1.5).tobytes() == pillow.tobytes()


def test_edges_repeat_the_border_pixels():
    """A bright last column stays bright at the edge (a mirrored border would darken it)."""
    pixels = np.zeros((40, 40), dtype=np.uint8)
    pixels[:, -1] = 255
    image = Image.fromarray(pixels, "L")
    ours = np.asarray(filters.gaussian_blur(image, 3), dtype=np.float64)
    assert np.abs(ours - exact_gaussian(image, 3)).max() <= 1.5
