"""Attachment thumbnails, as Mailpit makes them: a 180x120 JPEG on white.

An image at least 180x120 is scaled to cover the box and cropped to its centre; a smaller one is only
scaled down to fit and centred. Anything that is not an image, or not one Pillow can read, gives a blank
white thumbnail (Mailpit's answer too), never an error. Runs on a worker thread: decoding is CPU work.

Hostile images: the header's dimensions are checked before a pixel is decoded, so a few-kilobyte PNG that
claims 100,000 x 100,000 pixels costs nothing; Pillow's own bomb check (its global MAX_IMAGE_PIXELS,
which we leave alone for other users of Pillow in the process) is a second line.
"""

from __future__ import annotations

import io
import warnings

from PIL import Image, ImageOps

WIDTH, HEIGHT = 180, 120
MAX_PIXELS = 40_000_000  # a 40-megapixel photo decodes in about a second; a claim beyond it is refused
QUALITY = 70  # Mailpit's JPEG quality


def _jpeg(image: Image.Image) -> bytes:
    out = io.BytesIO()
    image.save(out, format="JPEG", quality=QUALITY)
    return out.getvalue()


def blank() -> bytes:
    return _jpeg(Image.new("RGB", (WIDTH, HEIGHT), "white"))


def _decoded(data: bytes) -> Image.Image | None:
    """The first frame as RGBA, or None when it is not an image we read or it claims too many pixels."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            image = Image.open(io.BytesIO(data))
            width, height = image.size
            if width <= 0 or height <= 0 or width * height > MAX_PIXELS:
                return None
            image.draft("RGB", (WIDTH * 2, HEIGHT * 2))  # JPEG: decode at a fraction of the size
            return ImageOps.exif_transpose(image).convert("RGBA")
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError, Image.DecompressionBombWarning):
        return None  # truncated, corrupt or unknown data: Pillow raises one of these
    except Exception:  # a plugin's own bug on crafted input must not turn into a 500
        return None


def thumbnail(content_type: str, data: bytes) -> bytes:
    """The JPEG thumbnail of a part's decoded bytes."""
    image = _decoded(data) if content_type.lower().startswith("image/") else None
    if image is None:
        return blank()
    if image.width < WIDTH or image.height < HEIGHT:
        image.thumbnail((WIDTH, HEIGHT), Image.Resampling.LANCZOS)  # only ever scales down
    else:
        image = ImageOps.fit(image, (WIDTH, HEIGHT), Image.Resampling.LANCZOS, centering=(0.5, 0.5))
    canvas = Image.new("RGB", (WIDTH, HEIGHT), "white")  # transparent PNG/GIF areas come out white
    canvas.paste(image, ((WIDTH - image.width) // 2, (HEIGHT - image.height) // 2), image)
    return _jpeg(canvas)
