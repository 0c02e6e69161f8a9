"""The Pillow (and OpenCV) side of each operation: one module per operation or family, as thumbor
keeps one file per filter. `TRANSFORMS` maps each operation of the catalogue (imaging/operations.py)
to its transform; a catalogue entry without one (or the reverse) fails at import.

Imported by the pipeline only: the filters load OpenCV and numpy, which upload_service never needs.
"""
from imaging.operations import OPERATIONS
from imaging.transforms.base import Context, OperationError, Transform
from imaging.transforms.crop import CROP
from imaging.transforms.filters import BLUR, SHARPEN
from imaging.transforms.flip import FLIP
from imaging.transforms.grayscale import GRAYSCALE
from imaging.transforms.output import COMPRESS, CONVERT
from imaging.transforms.resize import RESIZE
from imaging.transforms.rotate import ROTATE
from imaging.transforms.watermark import WATERMARK


def by_operation(transforms, operations):
    """{operation name: transform}, one transform for each operation of the catalogue and no other."""
    by_name = {transform.name: transform for transform in transforms}
    if by_name.keys() != operations.keys() or len(by_name) != len(transforms):
        raise ImportError(
            f"operations without a transform: {sorted(operations.keys() - by_name.keys())}; "
            f"transforms without an operation: {sorted(by_name.keys() - operations.keys())}; "
            f"transforms: {[transform.name for transform in transforms]}"
        )
    return by_name


TRANSFORMS = by_operation((RESIZE, CROP, ROTATE, FLIP, GRAYSCALE, BLUR, SHARPEN, WATERMARK, CONVERT, COMPRESS), OPERATIONS)

__all__ = ["TRANSFORMS", "Context", "OperationError", "Transform"]
