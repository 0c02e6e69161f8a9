"""watermark: white text with a dark outline, readable on any background, in a corner or the centre."""
import math

from PIL import Image, ImageDraw, ImageFont

from imaging.transforms.base import Transform

WATERMARK_FILL, WATERMARK_OUTLINE = (255, 255, 255, 255), (0, 0, 0, 255)  # readable on any background


def watermark(image, params, context):
    font, stroke = _watermark_font(image.size, params["text"], params["size"])
    overlay = _text_overlay(params["text"], font, stroke, params["opacity"])
    left, top = _watermark_position(image.size, overlay.size, params["position"], margin=font.size // 2)
    box = (left, top, left + overlay.width, top + overlay.height)
    # Composite only the text's box; the rest of the image is untouched (and never copied).
    region = image.crop(box).convert("RGBA")
    region.alpha_composite(overlay)
    image.paste(region.convert(image.mode), box)
    return image


def _watermark_font(image_size, text, size):
    """The font, `size` x the image's width high, made smaller if the text would not fit inside."""
    font_size = max(1, round(size * image_size[0]))
    font = ImageFont.load_default(font_size)
    text_width, text_height = _text_size(text, font, _stroke(font_size))
    room_width, room_height = image_size[0] - font_size, image_size[1] - font_size  # half a line of margin
    shrink = min(1.0, room_width / text_width if text_width else 1.0, room_height / text_height if text_height else 1.0)
    if shrink < 1.0:
        font_size = max(1, math.floor(font_size * shrink))
        font = ImageFont.load_default(font_size)
    return font, _stroke(font_size)


def _stroke(font_size):
    return max(1, font_size // 16)


def _text_size(text, font, stroke):
    left, top, right, bottom = ImageDraw.Draw(Image.new("L", (1, 1))).textbbox((0, 0), text, font, stroke_width=stroke)
    return right - left, bottom - top


def _text_overlay(text, font, stroke, opacity):
    draw = ImageDraw.Draw(Image.new("L", (1, 1)))
    left, top, right, bottom = draw.textbbox((0, 0), text, font, stroke_width=stroke)
    overlay = Image.new("RGBA", (max(1, right - left), max(1, bottom - top)), (0, 0, 0, 0))
    ImageDraw.Draw(overlay).text(
        (-left, -top), text, fill=WATERMARK_FILL, font=font, stroke_width=stroke, stroke_fill=WATERMARK_OUTLINE
    )
    overlay.putalpha(overlay.getchannel("A").point(lambda value: round(value * opacity)))
    return overlay


def _watermark_position(image_size, overlay_size, position, margin):
    (width, height), (text_width, text_height) = image_size, overlay_size
    if position == "center":
        return (width - text_width) // 2, (height - text_height) // 2
    vertical, horizontal = position.split("-")
    left = margin if horizontal == "left" else width - text_width - margin
    top = margin if vertical == "top" else height - text_height - margin
    return max(0, left), max(0, top)


WATERMARK = Transform("watermark", watermark)
