"""channels/ocr_reader.py: phone screenshots of CHSI's pages (made for the tests, rendered in
Chromium, and "photographed") are read as their message, with the ID number in the picture
masked or left out; bad pictures get a polite reason, never an exception."""

import asyncio
import io
import struct
import zlib

from channels import ocr_reader
from channels.ocr_reader import Reading, chosen_text, holds_message, reader
from harness.personal_data import readable


def read(data: bytes) -> Reading:
    return asyncio.run(reader().read(data))


def png_header(width: int, height: int) -> bytes:
    """A tiny PNG that claims width × height pixels (a decompression bomb's header)."""

    def chunk(kind: bytes, body: bytes) -> bytes:
        crc = zlib.crc32(kind + body) & 0xFFFFFFFF
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", crc)

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(b"\0" * 64))
        + chunk(b"IEND", b"")
    )


def test_every_screenshot_is_read_as_the_message_it_shows(screenshot_set) -> None:
    for shot in screenshot_set:
        reading = read(shot.data)
        assert shot.shows in reading.text, (shot.name, reading)
        if shot.id_number:
            assert shot.id_number.lower() not in readable(reading.text), shot.name


def test_a_page_without_a_known_message_is_read_whole_and_masked() -> None:
    lines = ["学信网 · 找回密码", "姓名 王小明", "证件号码 11010519491231002X", "手机 13912345678"]
    text = chosen_text(lines)
    assert "找回密码" in text and "王小明" in text
    assert "11010519491231002x" not in readable(text) and "13912345678" not in readable(text)


def test_page_messages_are_found_despite_one_misread_character() -> None:
    assert holds_message("证件号码*证件号码已被注朋，查看【解决方法】", "证件号码已被注册")
    assert holds_message("证件号码重复待审核，不能再次注册此证件号码", "证件号码重复待审核")
    assert not holds_message("证件号码*11010519491231002X", "证件号码已被注册")
    assert not holds_message("找回密码", "证件号码已被注册")


def test_pictures_that_cannot_be_read_get_a_reason_not_an_error() -> None:
    from PIL import Image

    blank = io.BytesIO()
    Image.new("RGB", (600, 400), "white").save(blank, "PNG")
    assert read(blank.getvalue()) == Reading(problem="screenshot_unreadable")
    assert read(b"%PDF-1.7 not a picture") == Reading(problem="screenshot_unsupported")
    assert read(b"") == Reading(problem="screenshot_unsupported")
    # a 100-byte file claiming 60,000 × 60,000 pixels is refused before anything is decoded
    assert read(png_header(60_000, 60_000)) == Reading(problem="screenshot_too_large")
    assert read(png_header(6_000, 6_000)) == Reading(problem="screenshot_too_large")
    assert read(b"\x89PNG" + b"\0" * (ocr_reader.MAX_IMAGE_BYTES + 1)) == Reading(
        problem="screenshot_too_large"
    )


def test_a_queue_over_its_bound_is_told_to_wait(monkeypatch) -> None:
    busy = ocr_reader.ScreenshotReader()
    busy._waiting = ocr_reader.MAX_WAITING + 1
    assert asyncio.run(busy.read(b"anything")) == Reading(problem="screenshot_busy")


def test_a_reading_over_its_time_budget_gives_up(monkeypatch) -> None:
    import time

    slow = ocr_reader.ScreenshotReader()
    monkeypatch.setattr(ocr_reader, "TIME_BUDGET_SECONDS", 0.2)
    monkeypatch.setattr(slow, "lines", lambda data: time.sleep(1) or ["证件号码已被注册"])
    assert asyncio.run(slow.read(b"x")) == Reading(problem="screenshot_busy")
    assert slow._waiting == 1  # the OCR still holds the thread: it still counts
    time.sleep(1.2)
    assert slow._waiting == 0


def test_one_client_has_one_picture_in_the_queue_and_others_keep_their_share(monkeypatch) -> None:
    """Seven large pictures at once from one client had kept the reader busy for everyone."""
    import time

    fair = ocr_reader.ScreenshotReader()
    monkeypatch.setattr(fair, "lines", lambda data: time.sleep(0.3) or ["证件号码已被注册"])

    async def burst() -> list[Reading]:
        mine = [fair.read(b"x", "203.0.113.7") for _ in range(7)]
        return list(await asyncio.gather(*mine, fair.read(b"x", "198.51.100.9")))

    readings = asyncio.run(burst())
    assert readings[0].text and readings[-1].text  # the first of one, and the other client's
    assert readings[1:7] == [Reading(problem="screenshot_one_at_a_time")] * 6
    assert fair._waiting == 0 and not fair._clients


def test_one_address_naming_a_new_conversation_per_picture_keeps_to_its_share(
    monkeypatch,
) -> None:
    """#24 item 10: seven pictures from one address, each for a conversation of its own, fill
    no more than its share of the queue; another address's picture is still read, and the
    share comes back once the pictures are read."""
    import time

    fair = ocr_reader.ScreenshotReader()
    monkeypatch.setattr(fair, "lines", lambda data: time.sleep(0.3) or ["证件号码已被注册"])
    one, other = "203.0.113.7", "198.51.100.9"

    async def burst() -> list[Reading]:
        mine = [fair.read(b"x", f"{one}|web-{n}", one) for n in range(7)]
        return list(await asyncio.gather(*mine, fair.read(b"x", f"{other}|web-x", other)))

    readings = asyncio.run(burst())
    read = [reading for reading in readings[:7] if reading.text]
    assert len(read) == ocr_reader.MAX_PER_ADDRESS
    assert readings[:7].count(Reading(problem="screenshot_busy")) == 7 - len(read)
    assert readings[-1].text  # the other address's picture
    assert fair._waiting == 0 and not fair._clients and not fair._addresses
    again = asyncio.run(fair.read(b"x", f"{one}|web-8", one))  # its share is back
    assert again.text

    # loopback and WeChat's servers (no address) are not counted
    async def unaddressed() -> list[Reading]:
        return list(await asyncio.gather(*[fair.read(b"x", f"wx:{n}") for n in range(4)]))

    assert all(reading.text for reading in asyncio.run(unaddressed()))


def test_every_reason_has_a_reply() -> None:
    from channels.replies import replies

    for problem in (
        "screenshot_unreadable",
        "screenshot_unsupported",
        "screenshot_too_large",
        "screenshot_busy",
        "voice_unsupported",
    ):
        assert replies()[problem].strip()
    assert "{text}" in replies()["screenshot_read"]


def picture(width: int, height: int) -> bytes:
    from PIL import Image

    encoded = io.BytesIO()
    Image.new("RGB", (width, height), "white").save(encoded, "PNG")
    return encoded.getvalue()


def test_a_large_picture_is_detected_at_a_bounded_size() -> None:
    """Text detection's memory grows with the pixels: a 2,000 × 2,000 picture had taken 770 MB
    at its peak. Whatever the picture, detection sees at most MAX_OCR_PIXELS."""
    for width, height in [(2000, 2000), (4000, 6000), (1170, 2532), (6000, 800)]:
        rows, columns, _ = ocr_reader.decoded(picture(width, height)).shape
        assert rows * columns <= ocr_reader.MAX_OCR_PIXELS
        assert max(rows, columns) <= ocr_reader.MAX_SIDE
    small = ocr_reader.decoded(picture(600, 900))
    assert small.shape[:2] == (900, 600)  # a small one is read as it is
    assert ocr_reader.decoded(picture(1080, 8000)).shape[0] <= ocr_reader.MAX_SIDE  # scrolling


def test_a_picture_too_thin_to_be_a_screenshot_is_refused() -> None:
    """RapidOCR enlarges a picture's short side: a 16,000 × 8 PNG (128,000 pixels, under every
    other limit) became a detection input of 900 million pixels."""
    for width, height in [(16000, 8), (8, 16000), (3000, 100), (40, 40 * 13)]:
        assert read(picture(width, height)) == Reading(problem="screenshot_unsupported")


class CountingEngine:
    """Stands for RapidOCR: detects `lines` full-width lines and counts the lines recognised."""

    def __init__(self, lines: int) -> None:
        self.lines, self.recognised = lines, 0

    def __call__(self, image, use_det=True, use_cls=True, use_rec=True):
        if use_det:
            w = image.shape[1]
            top = [20 * i for i in range(self.lines)]
            return [[[0, y], [w, y], [w, y + 16], [0, y + 16]] for y in top], None
        self.recognised += 1
        return [["证件号码已被注册", 0.99]], None


def test_a_picture_full_of_text_has_a_bounded_number_of_lines_recognised() -> None:
    """Recognition's time grows with the text: a picture full of it took 19 s, over the budget,
    and held the reader for everyone. Wide lines stop at MAX_LINE_WIDTH, any at MAX_BOXES."""
    busy = ocr_reader.ScreenshotReader()
    engine = CountingEngine(lines=400)
    busy._engine = engine
    busy.lines(picture(1200, 1200))
    assert 0 < engine.recognised < ocr_reader.MAX_BOXES  # 1,200 × 48 / 16 each: the width bound
    boxes = [[[0, 0], [40, 0], [40, 40], [0, 40]]] * 400  # narrow ones: the count bound
    assert len(ocr_reader.bounded_lines(boxes)) == ocr_reader.MAX_BOXES
    tall = [[[0, 0], [16, 0], [16, 2000], [0, 2000]]] * 10  # turned before reading: charged so
    assert len(ocr_reader.bounded_lines(tall)) < 10
    flat = [[[0, 0], [900, 0], [900, 0], [0, 0]]]  # no height: skipped, the others still read
    assert len(ocr_reader.bounded_lines(flat + boxes[:3])) == 3
