"""Reading a screenshot a student sends: offline Chinese OCR, bounded, off the event loop.

RapidOCR (rapidocr-onnxruntime) reads with the PP-OCRv4 detection and recognition models that ship
inside its wheel: nothing is downloaded, and the image never leaves this process. It is neither
stored nor logged; only the text read from it goes on, masked (core/privacy.py) like typed text.

Limits, checked before any pixel is decoded:
- MAX_IMAGE_BYTES of PNG, JPEG, WebP, BMP or GIF (the first frame);
- MAX_PIXELS from the header (a 100-byte PNG can claim 60,000 × 60,000 pixels: a decompression
  bomb), then the picture is scaled to at most MAX_SIDE pixels on its longer side and
  MAX_OCR_PIXELS in all (text detection's memory grows with the pixels: about 190 MB a million;
  a 2,000 × 2,000 picture had taken 770 MB at its peak, a phone screenshot 1.85 million pixels);
- at most MAX_BOXES lines of text recognised, top to bottom, and MAX_LINE_WIDTH of them in all
  (their width at the recogniser's height): recognition's time grows with the text, and a
  picture full of text took 19 s; the screenshots of CHSI's pages hold 10 to 18 lines, 8,120 at
  most;
- one OCR at a time in a worker thread (onnxruntime releases the GIL: the event loop keeps
  answering), at most MAX_WAITING more waiting, and TIME_BUDGET_SECONDS for each;
- one picture in the queue per client (a conversation), and at most MAX_PER_ADDRESS per client
  address (loopback and WeChat's servers, which speak for many, are not counted): a client that
  sends several at once gets a note for the others, one address cannot fill the queue by naming
  a new conversation for each picture, and everyone else keeps their share.

What is read: the lines that hold one of the page messages the FAQ answers
(screenshot_messages.yml), or else every line, top to bottom, at most MAX_TEXT_CHARS.
"""

import asyncio
import concurrent.futures
import difflib
import io
import logging
import re
import threading
import unicodedata
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

from core import memory
from core.privacy import mask
from core.yaml_files import read_yaml

logger = logging.getLogger(__name__)

MAX_IMAGE_BYTES = 4 * 1024 * 1024
MAX_PIXELS = 24_000_000  # a 4000 × 6000 photo; phone screenshots are 2-4 million
MAX_SIDE = 2000
MAX_OCR_PIXELS = 1_500_000
# A picture longer than this many times its width (or wider than its height), or thinner than
# MIN_SIDE, is no screenshot: RapidOCR would enlarge its short side (a 16,000 × 8 PNG became a
# detection input of 900 million pixels). A long scrolling screenshot is about 7.
MAX_ASPECT = 12
MIN_SIDE = 32
MAX_BOXES = 48
LINE_HEIGHT = 48  # the recogniser reads each line scaled to this height (PP-OCRv4)
MAX_LINE_WIDTH = 24_000
FORMATS = {"PNG", "JPEG", "WEBP", "BMP", "GIF", "MPO"}
MAX_WAITING = 4
# Pictures in the queue from one client address: a campus network puts many students behind one,
# so more than one, but fewer than the queue holds.
MAX_PER_ADDRESS = 2
TIME_BUDGET_SECONDS = 20.0
MAX_TEXT_CHARS = 300
MIN_SCORE = 0.5  # recognition confidence below which a line is noise
# How closely a line must contain one of the page messages (difflib ratio over a window).
MESSAGE_SIMILARITY = 0.8
MESSAGES_FILE = Path(__file__).with_name("screenshot_messages.yml")
_PUNCTUATION = re.compile(r"[\s\W_]+")


@dataclass(frozen=True)
class Reading:
    """What a screenshot said: the masked text, or why there is none (`problem`, a reply name)."""

    text: str = ""
    problem: str = ""


class ImageRefused(ValueError):
    """The bytes are not an image this reader takes; the message names the reply to give."""


def page_messages() -> list[str]:
    return list(read_yaml(MESSAGES_FILE)["messages"])


def _plain(text: str) -> str:
    return _PUNCTUATION.sub("", unicodedata.normalize("NFKC", text))


def holds_message(line: str, message: str) -> bool:
    """True when `line` contains `message`, allowing OCR's occasional wrong or missing character."""
    line, message = _plain(line), _plain(message)
    if message in line:
        return True
    width = len(message)
    if len(line) < width - 2:
        return False
    windows = range(max(1, len(line) - width + 1))
    return any(
        difflib.SequenceMatcher(None, line[i : i + width], message).ratio() >= MESSAGE_SIMILARITY
        for i in windows
    )


def chosen_text(lines: list[str]) -> str:
    """The page message's lines when the screenshot shows one, else all lines; masked."""
    messages = page_messages()
    wanted = [line for line in lines if any(holds_message(line, m) for m in messages)]
    text = "\n".join(wanted or lines)
    return mask(text)[:MAX_TEXT_CHARS].strip()


def decoded(data: bytes) -> Any:
    """The picture as an RGB array no larger than MAX_SIDE, or ImageRefused."""
    import numpy
    from PIL import Image, UnidentifiedImageError

    if len(data) > MAX_IMAGE_BYTES:
        raise ImageRefused("screenshot_too_large")
    try:
        with Image.open(io.BytesIO(data)) as image:  # reads the header only
            if image.format not in FORMATS:
                raise ImageRefused("screenshot_unsupported")
            width, height = image.size
            if width * height > MAX_PIXELS or width < 8 or height < 8:
                raise ImageRefused(
                    "screenshot_too_large" if width * height else "screenshot_unsupported"
                )
            image.draft("RGB", (MAX_SIDE, MAX_SIDE))  # JPEG: decode at a reduced size already
            picture = image.convert("RGB")
    except Image.DecompressionBombError as error:  # Pillow's own, far larger limit
        raise ImageRefused("screenshot_too_large") from error
    except (UnidentifiedImageError, OSError, SyntaxError) as error:
        raise ImageRefused("screenshot_unsupported") from error
    picture.thumbnail((MAX_SIDE, MAX_SIDE))
    width, height = picture.size
    if min(width, height) < MIN_SIDE or max(width, height) > MAX_ASPECT * min(width, height):
        raise ImageRefused("screenshot_unsupported")
    if width * height > MAX_OCR_PIXELS:
        scale = (MAX_OCR_PIXELS / (width * height)) ** 0.5
        picture = picture.resize((max(8, int(width * scale)), max(8, int(height * scale))))
    return numpy.asarray(picture)[:, :, ::-1].copy()  # RGB → BGR, as OpenCV-based readers expect


def line_image(picture: Any, box: Any) -> Any:
    """The line inside `box` (four corners), straightened: a photographed screenshot's lines are
    turned a few degrees. As RapidOCR crops its lines."""
    import cv2
    import numpy

    corners = numpy.array(box, dtype=numpy.float32)
    width = int(
        max(numpy.linalg.norm(corners[0] - corners[1]), numpy.linalg.norm(corners[2] - corners[3]))
    )
    height = int(
        max(numpy.linalg.norm(corners[0] - corners[3]), numpy.linalg.norm(corners[1] - corners[2]))
    )
    target = numpy.array([[0, 0], [width, 0], [width, height], [0, height]], dtype=numpy.float32)
    line = cv2.warpPerspective(
        picture,
        cv2.getPerspectiveTransform(corners, target),
        (max(1, width), max(1, height)),
        borderMode=cv2.BORDER_REPLICATE,
        flags=cv2.INTER_CUBIC,
    )
    return numpy.rot90(line) if height >= 1.5 * max(1, width) else line


def bounded_lines(boxes: list[Any]) -> list[Any]:
    """The boxes to recognise: top to bottom, at most MAX_BOXES and MAX_LINE_WIDTH in all."""
    import numpy

    chosen, width_left = [], float(MAX_LINE_WIDTH)
    for box in boxes[:MAX_BOXES]:
        corners = numpy.array(box, dtype=numpy.float32)
        sides = sorted(
            (
                float(numpy.linalg.norm(corners[0] - corners[1])),
                float(numpy.linalg.norm(corners[0] - corners[3])),
            )
        )
        if sides[0] < 2:
            continue  # no line: nothing to read, nothing to charge
        # a tall box is turned before it is read (line_image): its long side is the line
        width_left -= sides[1] * LINE_HEIGHT / sides[0]
        if width_left < 0:
            break
        chosen.append(box)
    return chosen


class ScreenshotReader:
    """One OCR engine, made on first use, fed by one worker thread."""

    def __init__(self) -> None:
        self._engine: Any = None
        self._loading = threading.Lock()
        self._pool = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="ocr")
        self._waiting = 0
        self._clients: set[str] = set()
        self._addresses: dict[str, int] = {}
        self._counting = threading.Lock()

    def _ocr(self) -> Any:
        with self._loading:
            if self._engine is None:
                from rapidocr_onnxruntime import RapidOCR

                # detection reads the picture at its own size, at most MAX_SIDE: its default
                # enlarges the short side to 736 pixels, past MAX_OCR_PIXELS for a long picture
                self._engine = RapidOCR(
                    intra_op_num_threads=2,
                    inter_op_num_threads=1,
                    det_limit_type="max",
                    det_limit_side_len=MAX_SIDE,
                )
        return self._engine

    def lines(self, data: bytes) -> list[str]:
        """The lines of text in the image, top to bottom (blocking: run it in the pool)."""
        picture = decoded(data)
        engine = self._ocr()
        found = []
        try:
            detected, _ = engine(picture, use_det=True, use_cls=False, use_rec=False)
            for box in bounded_lines(detected or []):
                read, _ = engine(line_image(picture, box), use_det=False, use_cls=False)
                if read:
                    found.append((box, *read[0]))
        finally:
            del picture
            memory.hand_back_free_memory(collect=False)  # the OCR's buffers, from this thread
        boxes = [(box, text) for box, text, score in found if float(score) >= MIN_SCORE]
        boxes.sort(key=lambda item: (min(p[1] for p in item[0]), min(p[0] for p in item[0])))
        return [text.strip() for _, text in boxes if text.strip()]

    async def read(self, data: bytes, client: str = "", address: str = "") -> Reading:
        """The masked text of the screenshot, or the reason there is none. A picture counts as
        waiting until its OCR has really finished (a reading over its time budget still holds
        the thread); each client (a conversation) has one picture in the queue at most, and each
        client address ("" for none) MAX_PER_ADDRESS: one client sending seven large pictures at
        once had kept the reader busy for everyone."""
        with self._counting:
            if self._waiting > MAX_WAITING:
                return Reading(problem="screenshot_busy")
            if client and client in self._clients:
                return Reading(problem="screenshot_one_at_a_time")
            if address and self._addresses.get(address, 0) >= MAX_PER_ADDRESS:
                return Reading(problem="screenshot_busy")
            self._waiting += 1
            self._clients.add(client)
            if address:
                self._addresses[address] = self._addresses.get(address, 0) + 1

        def finished(_: Any) -> None:  # in the OCR thread, when the reading really ends
            with self._counting:
                self._waiting -= 1
                self._clients.discard(client)
                if address:
                    left = self._addresses.pop(address, 1) - 1
                    if left:
                        self._addresses[address] = left

        done = self._pool.submit(self.lines, data)
        done.add_done_callback(finished)
        work = asyncio.wrap_future(done)
        try:
            lines = await asyncio.wait_for(asyncio.shield(work), TIME_BUDGET_SECONDS)
        except ImageRefused as refused:
            return Reading(problem=str(refused))
        except asyncio.TimeoutError:
            logger.warning("A screenshot took longer than %.0f s to read.", TIME_BUDGET_SECONDS)
            return Reading(problem="screenshot_busy")
        except Exception as error:  # a broken image or engine: the student is asked to type
            logger.error("Could not read a screenshot: %s", type(error).__name__)
            return Reading(problem="screenshot_unreadable")
        text = chosen_text(lines)
        return Reading(text=text) if text else Reading(problem="screenshot_unreadable")


@lru_cache(maxsize=1)
def reader() -> ScreenshotReader:
    """The process's reader (the engine holds about 100 MB once loaded)."""
    return ScreenshotReader()
