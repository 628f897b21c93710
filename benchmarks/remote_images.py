"""Building RemoteEngine's request for a conversation with a screenshot in it, turn after turn:
with the kept data URLs (ours) vs. decoding, downscaling and encoding the image again on every
turn (the cache cleared before each request: what it costs without it), in one run.

    flock /tmp/qwen-cpu.lock python benchmarks/remote_images.py [--turns 10] [--size 1920x1080]

The image is synthetic but screenshot-like (flat areas, gradients and noisy "text" rows), so PNG
compresses it about as much as a real screen. No server is needed: `_body()` is the exact
request body RemoteEngine sends.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

from qwen_tui.engine import remote_images
from qwen_tui.engine.params import Sampling
from qwen_tui.engine.remote import RemoteEngine


def screenshot(path: Path, width: int, height: int) -> None:
    import random

    from PIL import Image, ImageDraw

    image = Image.new("RGB", (width, height), (30, 30, 36))
    draw = ImageDraw.Draw(image)
    rng = random.Random(7)
    for x in range(0, width, 4):
        draw.line([(x, 0), (x, height // 8)], fill=(40 + x * 120 // width, 60, 140))
    for row in range(height // 8, height, 18):
        x = 12
        while x < width - 60:
            word = rng.randint(12, 60)
            shade = rng.choice([(220, 220, 220), (120, 200, 120), (230, 180, 90)])
            draw.rectangle([x, row + 3, x + word, row + 12], fill=shade)
            x += word + rng.randint(6, 14)
    image.save(path, "PNG")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--turns", type=int, default=10)
    parser.add_argument("--size", default="1920x1080")
    args = parser.parse_args()
    width, height = map(int, args.size.split("x"))
    engine = RemoteEngine("http://127.0.0.1:9/v1")  # never connected: only the request is built
    with tempfile.TemporaryDirectory() as tmp:
        shot = Path(tmp) / "screen.png"
        screenshot(shot, width, height)
        chat = [{"role": "user", "content": "What is on my screen?", "images": [str(shot)]}]
        ours, baseline = [], []
        for turn in range(args.turns):
            chat += [{"role": "assistant", "content": f"Answer {turn}."}, {"role": "user", "content": f"And {turn}?"}]
            remote_images._cache.clear()
            start = time.perf_counter()
            body = engine._body(chat, None, None, False, 64, Sampling())
            baseline.append(time.perf_counter() - start)
            start = time.perf_counter()
            again = engine._body(chat, None, None, False, 64, Sampling())  # the image was encoded just above
            ours.append(time.perf_counter() - start)
            assert again == body
        size_kb = len(body["messages"][0]["content"][0]["image_url"]["url"]) / 1024
    b, o = statistics.median(baseline), statistics.median(ours)
    print(f"image {width}x{height} -> data URL {size_kb:.0f} KiB, {args.turns} turns")
    print(f"request build, median per turn: re-encoding {b * 1000:.1f} ms, kept data URL {o * 1000:.2f} ms")
    print(f"ratio (re-encoding / kept): {b / o:.0f}x")


if __name__ == "__main__":
    main()
