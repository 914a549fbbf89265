"""The page of `streamvideo serve --web`, measured in a real headless Chromium on loopback (docs/web.md).

    OMP_NUM_THREADS=1 python benchmarks/web_page.py                   # both parts, default model, 1 torch thread
    python benchmarks/web_page.py --only latency --presses 60 --threads 2
    python benchmarks/web_page.py --only latency --screenshot docs/images/web.png

1. frames: one frame as raw RGB, PNG and JPEG (quality 85, the bridge's default): bytes, the server's encoding
   time (PIL) and the browser's decoding and drawing time, with the page's own drawFrame (raw: RGB -> ImageData
   -> putImageData; PNG and JPEG: createImageBitmap -> drawImage), at the default model's 64x64 (its own frames)
   and at 832x480 (the built-in game drawn at that size: the Wan scale).
2. latency: the default model (or --model) served on loopback (`serve --web`'s WebFront, in this process, with
   --threads torch threads) and the page in Chromium; an arrow key held for --hold seconds then released,
   --presses times, in turn; the page's own measure: performance.now() at keydown to the first frame drawn that
   was generated with the key. Median and p95; --screenshot saves the page of a new session (--seed) afterwards.
Writes benchmarks/results/web-page-<model>-threads<N>-cpu.json and prints a table.
"""

from __future__ import annotations

import argparse
import base64
import io
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path

import numpy as np
from PIL import Image

import streamvideo
from streamvideo.bridge import Server, ServerConfig
from streamvideo.bridge.web import WebFront
from streamvideo.engine.threads import set_threads
from streamvideo.envs.game.env import StreamVideoGameEnv

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "bridge"))
from chromium import Chromium  # noqa: E402

MODEL = "default"
RESULTS = Path(__file__).resolve().parent / "results" / "web-page-{model}-threads{threads}-cpu.json"
ARROWS = ("ArrowUp", "ArrowRight", "ArrowDown", "ArrowLeft")
FORMATS = {"raw": None, "png": "image/png", "jpeg": "image/jpeg"}
ENCODE_REPEATS = 50
DECODE_REPEATS = 50


def model_frames() -> np.ndarray:
    """A few chunks of the default model's frames, played with the arrows."""
    gen = streamvideo.load(MODEL)
    gen.reset(seed=0)
    return np.concatenate([gen.step(action).frames for action in (1, 4, 4, 2, 3)])


def game_frames(width: int = 832, height: int = 480) -> np.ndarray:
    """The built-in game drawn at 832 x 832, cropped to 832 x 480: frames of the Wan scale with real content."""
    env = StreamVideoGameEnv(size=width)
    env.reset(seed=0)
    return np.stack([env.step(action)[0][:height] for action in (1, 4, 4, 2, 3, 3)])


def encode(frame: np.ndarray, kind: str) -> bytes:
    if kind == "raw":
        return frame.tobytes()
    out = io.BytesIO()
    Image.fromarray(frame).save(out, "PNG" if kind == "png" else "JPEG", **({"quality": 85} if kind == "jpeg" else {}))
    return out.getvalue()


def browser_decode_ms(page, data: bytes, kind: str, width: int, height: int) -> float:
    """Mean ms to decode and draw one frame with the page's drawFrame, on a canvas of the frame's size, over
    DECODE_REPEATS frames (a page's clock ticks in 0.1 ms steps)."""
    mime = FORMATS[kind]
    decode = ("new Uint8Array(buffer)" if mime is None
              else f"await createImageBitmap(new Blob([buffer], {{type: '{mime}'}}))")
    script = f"""(async () => {{
        canvas.width = {width}; canvas.height = {height};
        frameImage = context.createImageData({width}, {height});
        const buffer = Uint8Array.from(atob('{base64.b64encode(data).decode()}'), c => c.charCodeAt(0)).buffer;
        const start = performance.now();
        for (let i = 0; i < {DECODE_REPEATS}; i++) {{
            drawFrame({decode});
            context.getImageData(0, 0, 1, 1);   // wait for the drawing, not only its queueing
        }}
        return (performance.now() - start) / {DECODE_REPEATS};
    }})()"""
    return page.evaluate(script)


def measure_frames(page) -> list[dict]:
    rows = []
    for label, frames in (("default model 64x64", model_frames()), ("game at 832x480", game_frames())):
        frame = frames[len(frames) // 2]
        height, width = frame.shape[:2]
        for kind in FORMATS:
            sizes = [len(encode(f, kind)) for f in frames]
            start = time.perf_counter()
            for _ in range(ENCODE_REPEATS):
                encode(frame, kind)
            encode_ms = (time.perf_counter() - start) * 1000 / ENCODE_REPEATS
            rows.append({"frames": label, "format": kind, "bytes_per_frame": round(statistics.mean(sizes)),
                         "server_encode_ms": round(encode_ms, 3),
                         "browser_decode_draw_ms": round(browser_decode_ms(page, encode(frame, kind), kind, width,
                                                                           height), 3)})
    return rows


def measure_latency(page, presses: int, hold: float) -> list[float]:
    page.evaluate("window.streamvideo.latencies = []")
    for n in range(presses):
        key = ARROWS[n % len(ARROWS)]
        page.key(key, True)
        time.sleep(hold)
        page.key(key, False)
        time.sleep(hold / 2)
    page.wait_for(f"window.streamvideo.latencies.length >= {presses}", timeout=30)
    return page.evaluate("window.streamvideo.latencies")


def percentile(values: list[float], q: float) -> float:
    return float(np.percentile(values, q))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--only", choices=["frames", "latency"])
    parser.add_argument("--model", default=MODEL, help="the model served for the latency run")
    parser.add_argument("--threads", type=int, default=1, help="torch threads of the server")
    parser.add_argument("--presses", type=int, default=40)
    parser.add_argument("--hold", type=float, default=0.6, help="seconds each key is held")
    parser.add_argument("--screenshot", help="save the page as a PNG here after the latency run")
    parser.add_argument("--seed", type=int, default=1, help="the screenshot's session seed")
    args = parser.parse_args()

    threads = set_threads(args.threads)
    server = Server(ServerConfig(bind="tcp://127.0.0.1:*", pub="tcp://127.0.0.1:*", models=(args.model,))).start()
    front = WebFront(server, "127.0.0.1", 0).start()
    result = {"model": args.model, "threads": threads, "machine": platform.processor() or platform.machine(),
              "cpus": os.cpu_count(), "load_average_at_start": os.getloadavg()}
    try:
        with Chromium(width=1100, height=860) as browser:
            page = browser.page
            page.navigate(front.url)
            page.wait_for("window.streamvideo.framesDrawn >= 10")
            result["chromium"] = page.call("Browser.getVersion")["product"]
            if args.only in (None, "latency"):
                latencies = measure_latency(page, args.presses, args.hold)
                result["latency_ms"] = {"presses": len(latencies), "median": round(statistics.median(latencies), 1),
                                        "p95": round(percentile(latencies, 95), 1),
                                        "min": round(min(latencies), 1), "max": round(max(latencies), 1),
                                        "all": [round(v, 1) for v in latencies]}
                print(f"key press to frame drawn, {args.model}, {threads} torch thread(s), {len(latencies)} presses: "
                      f"median {result['latency_ms']['median']} ms, p95 {result['latency_ms']['p95']} ms")
                if args.screenshot:
                    take_screenshot(page, args.screenshot, args.seed)
            if args.only in (None, "frames"):
                page.press("KeyP")   # the stream pauses: nothing else draws on the canvas meanwhile
                result["frame_formats"] = measure_frames(page)
                print(f"{'frames':<22}{'format':<8}{'bytes/frame':>12}{'encode ms':>11}{'decode+draw ms':>16}")
                for row in result["frame_formats"]:
                    print(f"{row['frames']:<22}{row['format']:<8}{row['bytes_per_frame']:>12}"
                          f"{row['server_encode_ms']:>11.3f}{row['browser_decode_draw_ms']:>16.3f}")
    finally:
        front.stop()
        server.stop()
    out = Path(str(RESULTS).format(model=args.model, threads=threads))
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {out}")
    return 0


def take_screenshot(page, path: str, seed: int) -> None:
    """The page of a new session (seed `seed`, from the model's start frames), after a step right and two
    seconds of play; cropped to the page's content."""
    page.navigate(page.evaluate("location.origin + location.pathname") + f"?seed={seed}")
    page.wait_for("window.streamvideo.framesDrawn >= 3")
    page.press("ArrowRight")
    page.wait_for("window.streamvideo.latencies.length >= 1")
    time.sleep(2.0)
    page.screenshot(path, clip_to="main")
    print(f"saved {path}")


if __name__ == "__main__":
    sys.exit(main())
