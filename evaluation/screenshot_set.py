"""The screenshot set in `make eval`: each picture read by the OCR reader (channels/ocr_reader.py)
and the text classified by each pipeline, as the server would."""

import asyncio
from collections.abc import Callable

from channels.ocr_reader import reader
from harness.screenshot_pages import render


def report_lines(classifiers: dict[str, Callable[[list[str]], list[str]]]) -> list[str]:
    shots = render()
    texts = [asyncio.run(reader().read(shot.data)).text for shot in shots]
    read_right = sum(shot.shows in text for shot, text in zip(shots, texts, strict=True))
    lines = [
        "",
        "## Screenshots",
        "",
        f"The screenshot set (harness/screenshot_pages.py): {len(shots)} pictures, CHSI's pages as "
        "phone screenshots and photographed (scaled, turned, JPEG). Read right: the text read "
        f"holds the page's message: {read_right} / {len(shots)}. Routed right: the text read is "
        "classified as the page's intent.",
        "",
        "| pipeline | routed right |",
        "| --- | --- |",
    ]
    for name, classify in classifiers.items():
        predicted = classify(texts)
        right = sum(p == shot.intent for p, shot in zip(predicted, shots, strict=True))
        lines.append(f"| {name} | {right} / {len(shots)} |")
    return lines
