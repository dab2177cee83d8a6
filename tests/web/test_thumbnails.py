"""GET /api/v1/message/{ID}/part/{PartID}/thumb over a real sandbox: Mailpit's 180x120 JPEG on white."""

from __future__ import annotations

import io
import smtplib
import struct
import zlib
from email.message import EmailMessage

import httpx
import pytest
from PIL import Image

from mailsandbox.app import Sandbox
from tests.conftest import probe_during


@pytest.fixture
def client(running_sandbox: Sandbox) -> httpx.Client:
    return httpx.Client(base_url=f"http://{running_sandbox.address('http')}", timeout=30)


def _png(image: Image.Image) -> bytes:
    out = io.BytesIO()
    image.save(out, format="PNG")
    return out.getvalue()


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def huge_png(width: int, height: int, rows: int | None = None) -> bytes:
    """A PNG of `width` x `height` grey pixels, all zero: a small file that decodes to a huge image.
    With `rows`, only that many rows of data follow the header (a truncated file)."""
    packer = zlib.compressobj(9)
    row = b"\0" * (width + 1)  # filter byte + one byte a pixel
    idat = b"".join(packer.compress(row) for _ in range(height if rows is None else rows)) + packer.flush()
    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", header) + _chunk(b"IDAT", idat) + _chunk(b"IEND", b"")


def _send(sb: Sandbox, *attachments: tuple[bytes, str, str, str]) -> str:
    msg = EmailMessage()
    msg["From"], msg["To"], msg["Subject"] = "ann@example.test", "bob@example.test", "pictures"
    msg.set_content("see attached")
    for data, maintype, subtype, name in attachments:
        msg.add_attachment(data, maintype=maintype, subtype=subtype, filename=name)
    addr = sb.address("smtp")
    with smtplib.SMTP(addr.host, addr.port) as smtp:
        smtp.send_message(msg)
    return "latest"


def _thumb(client: httpx.Client, part: str, message: str = "latest") -> Image.Image:
    answer = client.get(f"/api/v1/message/{message}/part/{part}/thumb")
    assert answer.status_code == 200, answer.text
    assert answer.headers["content-type"] == "image/jpeg"
    image = Image.open(io.BytesIO(answer.content))
    assert (image.format, image.size) == ("JPEG", (180, 120))
    return image.convert("RGB")


def _px(image: Image.Image, xy: tuple[int, int]) -> tuple[int, ...]:
    pixel = image.getpixel(xy)
    assert isinstance(pixel, tuple)
    return pixel


def _white(pixel: tuple[int, ...]) -> bool:
    return all(c > 240 for c in pixel)


def test_large_image_is_cropped_small_one_centred_on_white(running_sandbox: Sandbox, client: httpx.Client) -> None:
    wide = Image.new("RGB", (900, 300), "red")  # 3:1 -> covers 180x120, the sides cropped: all red
    small = Image.new("RGBA", (60, 40), (0, 0, 255, 255))  # smaller than the box: centred, not enlarged
    clear = Image.new("RGBA", (400, 400), (0, 0, 0, 0))  # transparent: white, not black
    _send(running_sandbox, (_png(wide), "image", "png", "wide.png"), (_png(small), "image", "png", "small.png"),
          (_png(clear), "image", "png", "clear.png"))  # fmt: skip
    parts = {a["FileName"]: a["PartID"] for a in client.get("/api/v1/message/latest").json()["Attachments"]}
    red = _thumb(client, parts["wide.png"])
    assert all(_px(red, xy)[0] > 200 > _px(red, xy)[1] for xy in [(0, 0), (179, 119), (90, 60)])
    blue = _thumb(client, parts["small.png"])
    assert _white(_px(blue, (0, 0))) and _white(_px(blue, (55, 60)))  # outside the 60x40 in the middle
    assert _px(blue, (90, 60))[2] > 200 > _px(blue, (90, 60))[0]
    assert _white(_px(_thumb(client, parts["clear.png"]), (90, 60)))
    answer = client.get(f"/api/v1/message/latest/part/{parts['wide.png']}/thumb")
    assert answer.headers["content-disposition"] == 'filename="wide.png"'


def test_not_an_image_or_broken_is_a_blank_thumbnail(running_sandbox: Sandbox, client: httpx.Client) -> None:
    _send(running_sandbox, (b"%PDF-1.4 fake", "application", "pdf", "report.pdf"),
          (b"\x89PNG\r\n\x1a\n garbage", "image", "png", "broken.png"))  # fmt: skip
    parts = {a["FileName"]: a["PartID"] for a in client.get("/api/v1/message/latest").json()["Attachments"]}
    for name in ("report.pdf", "broken.png"):
        image = _thumb(client, parts[name])
        assert all(_white(_px(image, xy)) for xy in [(0, 0), (90, 60), (179, 119)])
    assert client.get("/api/v1/message/latest/part/9/thumb").status_code == 404
    assert client.get("/api/v1/message/nope/part/2/thumb").status_code == 404
    assert client.get("/api/v1/message/latest/part/x²/thumb").status_code == 404


def test_decompression_bomb_is_refused_before_decoding(running_sandbox: Sandbox, client: httpx.Client) -> None:
    # 64 megapixels of black: over our bound, under Pillow's own (89M), so only our check makes it blank;
    # and a header that claims 10 gigapixels over a few bytes of data.
    bombs = [(huge_png(8_000, 8_000), "image", "png", "black.png"),
             (huge_png(100_000, 100_000, rows=2), "image", "png", "claim.png")]  # fmt: skip
    assert len(bombs[0][0]) < 200_000
    _send(running_sandbox, *bombs)
    message = client.get("/api/v1/message/latest").json()
    parts = [a["PartID"] for a in message["Attachments"]]
    images: list[Image.Image] = []
    # By its ID: the probes' own messages become the latest meanwhile.
    probe_during(running_sandbox, lambda: images.extend(_thumb(client, part, message["ID"]) for part in parts))
    for image in images:
        assert all(_white(_px(image, xy)) for xy in [(0, 0), (90, 60)])
    assert client.get("/livez").text == "ok"  # and the server keeps serving
