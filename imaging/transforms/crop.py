"""crop: a rectangle that must lie inside the image at its step."""
from imaging.failures import ImageFailure
from imaging.transforms.base import OperationError, Transform


def crop_box(size, params):
    left, top = params["left"], params["top"]
    right, bottom = left + params["width"], top + params["height"]
    if right > size[0] or bottom > size[1]:
        raise OperationError(
            ImageFailure.INVALID_CROP,
            f"The crop ({left},{top})-({right},{bottom}) is outside the {size[0]}x{size[1]} image",
        )
    return left, top, right, bottom


def output_size(size, params):
    crop_box(size, params)
    return params["width"], params["height"]


def crop(image, params, context):
    return image.crop(crop_box(image.size, params))


CROP = Transform("crop", crop, output_size=output_size)
