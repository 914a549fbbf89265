"""`streamvideo play`: drive a world model with the keyboard in a pygame window.

A worker thread generates the next chunk while the main thread shows the current chunk's frames at the
model's frame rate. The worker starts a chunk as soon as the one before it goes on screen (one chunk
ahead, no more) and reads the latest key state when it starts, so play is smooth and input lag stays
near one chunk.

A model folder that ships start frames (a few real frames per trained prompt) starts every stream,
and every reset, from those of the prompt (`generator.start_frames_for`), so the first chunk continues a
real scene instead of inventing one from noise; `--no-start-frames` starts from the text alone.

Keys: the model's actions (arrows / WASD / space..., from the env's action names where the model has them;
the rules are in `streamvideo.engine.keymap`; listed on the help overlay, and printed once at start for a model
without action names; a Box space also takes the mouse), Enter to type a new prompt (Enter again applies it
from the next chunk, Esc cancels), R reset, P pause, F12 screenshot, H help, Esc quit.

The HUD shows the frames shown per second ("paused" instead while paused), the index of the chunk on
screen and its generation time and NFE, and the prompt (wrapped to two lines, ellipsized after that).
The chunk index is the generator's `Chunk.index`, the env's `info["chunk"]`: it counts from 0 at the
start of a stream, and a stream from real start frames counts them, so its first generated chunk is #1.
Typed text longer than the window shows its end (the end being typed), with an ellipsis in front.

    streamvideo play --prompt "sandy desert"
    streamvideo play --headless --frames 300 --record out.mp4   # no display: scripted keys, prints a summary
"""

from __future__ import annotations

import argparse
import functools
import os
import queue
import threading
import time
from collections import deque
from dataclasses import dataclass
from pathlib import Path

import numpy as np

os.environ.setdefault("PYGAME_HIDE_SUPPORT_PROMPT", "1")
import pygame  # noqa: E402

from ..engine.checkpoints import UserError  # noqa: E402
from ..engine.schedules import schedule_text  # noqa: E402
from ..engine.speedups import add_speedups_argument  # noqa: E402
from ..engine.threads import add_threads_argument, positive_int, set_threads  # noqa: E402
from .keymap import KeyMap  # noqa: E402
from .video import Mp4Writer  # noqa: E402

FALLBACK_MODEL = "tiny-random"
# what the headless run types halfway through: one of the default model's trained prompts
SCRIPTED_PROMPT = ("a red knight walking on snowy ground among pine trees and wandering penguins under a clear sky, "
                   "warm palette")
HEADLESS_FRAMES = 300
CONTROL_HELP = ["    Enter  type a new prompt", "        R  reset", "        P  pause",
                "      F12  screenshot", "        H  this help", "      Esc  quit",
                "HUD chunk #n = the env's info['chunk']: from 0,", "start frames included (then the first is #1)"]
ELLIPSIS = "\u2026"
HUD_MARGIN = 6         # pixels between the window's left and right edges and the HUD text
PROMPT_LINES = 2       # the current prompt wraps onto at most this many HUD lines


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", default="default",
                        help=f'preset name or checkpoint path (default: "default"; "{FALLBACK_MODEL}" '
                             f'when "default" is not available)')
    parser.add_argument("--mode", default=None, choices=["diagonal", "self_forcing", "hierarchical"],
                        help="rollout mode (default: the model's)")
    parser.add_argument("--schedule", type=schedule_text, default=None,
                        help='denoising steps per chunk, e.g. "4322222"')
    parser.add_argument("--prompt", default=None, help="text prompt to start from")
    parser.add_argument("--scale", type=positive_int, default=None,
                        help="window pixels per model pixel (default: longer side about 512 px)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the first stream (each reset adds 1)")
    parser.add_argument("--device", default=None, help="torch device (default: cuda when available, else cpu)")
    parser.add_argument("--record", metavar="OUT.mp4", default=None, help="write the frames shown to an mp4")
    parser.add_argument("--headless", action="store_true",
                        help="no window (SDL dummy driver): play a scripted key sequence and print a summary")
    parser.add_argument("--frames", type=positive_int, default=None,
                        help=f"stop after this many frames (headless default: {HEADLESS_FRAMES})")
    parser.add_argument("--no-start-frames", dest="start_frames", action="store_false",
                        help="start streams from the prompt alone, not from the model's real start frames")
    add_threads_argument(parser)
    add_speedups_argument(parser)


def run(args: argparse.Namespace) -> int:
    set_threads(args.threads)
    if args.record and not Path(args.record).resolve().parent.is_dir():
        raise UserError(f"--record {args.record}: folder {Path(args.record).resolve().parent} does not exist")
    if args.headless:
        os.environ["SDL_VIDEODRIVER"] = "dummy"
        os.environ["SDL_AUDIODRIVER"] = "dummy"
    generator, model_name = load_model(args)
    frames = HEADLESS_FRAMES if args.frames is None and args.headless else args.frames
    session = PlaySession(generator, model_name, prompt=args.prompt, seed=args.seed, scale=args.scale,
                          record=args.record, paced=not args.headless, start_frames=args.start_frames)
    if not session.keymap.named:   # keys chosen without action names: say which
        print("\n".join(["keys for the model's actions:", *session.keymap.help_lines()]))
    script = demo_script(session.keymap, frames) if args.headless else None
    summary = session.run(max_frames=frames, script=script)
    print("\n".join(summary.lines()))
    return 0


def load_model(args: argparse.Namespace):
    """(generator, name): the requested model, or the tiny random one when "default" is not installed."""
    from ..engine.presets import load, preset_names

    name = args.model
    if name == "default" and name not in preset_names():
        print(f'model "default" is not installed; playing "{FALLBACK_MODEL}" (random weights) instead')
        name = FALLBACK_MODEL
    settings = {k: v for k, v in dict(mode=args.mode, schedule=args.schedule).items() if v is not None}
    if "compile" in args.speedups:
        print("compiling the model (torch.compile: about a minute the first time, seconds once inductor's cache "
              "holds it)...", flush=True)
    return load(name, device=args.device, speedups=args.speedups, **settings), name


def start_stream(generator, prompt: str | None, seed: int, start_frames: bool) -> int:
    """Reset the generator, from the model's start frames of the prompt when asked and available;
    returns how many real frames the stream starts from (0: from the prompt alone)."""
    prompt = generator.default_prompt if prompt is None else prompt
    context = generator.start_frames_for(prompt) if start_frames else None
    generator.reset(prompt=prompt, seed=seed, context_frames=context)
    return 0 if context is None else len(context)


# ------------------------------------------------------------------------------------ shared input state

@dataclass(frozen=True)
class Request:
    """What the worker reads when it starts a chunk."""
    keys: list[int]       # keys held now, plus keys tapped since the last chunk (oldest first)
    pointer: tuple[float, float] | None   # the mouse's place (x, y in [-1, 1]) while its left button is held
    prompt: str | None    # a new prompt to apply from this chunk on
    reset: bool           # start a new stream first
    epoch: int            # counts resets; chunks of an older epoch are dropped by the display


class Controls:
    """Input written by the main thread and read by the generation worker, under one lock."""

    def __init__(self):
        self._lock = threading.Lock()
        self._held: list[int] = []
        self._tapped: list[int] = []
        self._pointer: tuple[float, float] | None = None
        self._prompt: str | None = None
        self._reset = False
        self.epoch = 0

    def press(self, key: int) -> None:
        with self._lock:
            if key not in self._held:
                self._held.append(key)
            self._tapped.append(key)

    def release(self, key: int) -> None:
        with self._lock:
            if key in self._held:
                self._held.remove(key)

    def release_all(self) -> None:
        with self._lock:
            self._held.clear()

    def point(self, pointer: tuple[float, float] | None) -> None:
        with self._lock:
            self._pointer = pointer

    def request_prompt(self, prompt: str) -> None:
        with self._lock:
            self._prompt = prompt

    def request_reset(self) -> None:
        with self._lock:
            self._reset = True
            self.epoch += 1

    def take(self) -> Request:
        with self._lock:
            keys = list(dict.fromkeys(self._tapped + self._held))  # taps first, held keys (newest) last
            request = Request(keys, self._pointer, self._prompt, self._reset, self.epoch)
            self._tapped, self._prompt, self._reset = [], None, False
            return request


# ------------------------------------------------------------------------------------ generation worker

@dataclass(frozen=True)
class Generated:
    frames: np.ndarray   # uint8 [T, H, W, 3]
    index: int           # chunk index in the stream, as the env's info["chunk"] (start frames count)
    seconds: float       # generation time of the chunk
    nfe: int             # network evaluations spent on it
    action: object       # the action it was generated with
    prompt: str          # the prompt it was generated with
    epoch: int


class ChunkWorker(threading.Thread):
    """Generates chunks one ahead of the display; errors are re-raised in the main thread by `take`."""

    def __init__(self, generator, keymap: KeyMap, controls: Controls, seed: int, start_frames: bool = True):
        super().__init__(name="streamvideo-generate", daemon=True)
        self.generator, self.keymap, self.controls = generator, keymap, controls
        self.seed, self.start_frames = seed, start_frames
        self.chunks: queue.Queue[Generated] = queue.Queue()
        self.free_slots = threading.Semaphore(1)  # chunks generated but not yet taken by the display
        self.stopping = threading.Event()
        self.error: Exception | None = None

    def run(self) -> None:
        try:
            while self._wait_for_slot():
                self.chunks.put(self._generate(self.controls.take()))
        except Exception as err:  # handed to the main thread by take()
            self.error = err

    def take(self, timeout: float) -> Generated | None:
        """The next chunk, or None if none arrives within `timeout` seconds."""
        try:
            generated = self.chunks.get(timeout=timeout) if timeout > 0 else self.chunks.get_nowait()
        except queue.Empty:
            generated = None
        if self.error is not None:
            raise RuntimeError(f"chunk generation failed: {self.error}") from self.error
        if generated is not None:
            self.free_slots.release()
        return generated

    def stop(self) -> None:
        self.stopping.set()
        self.join(timeout=30)

    def _wait_for_slot(self) -> bool:
        while not self.free_slots.acquire(timeout=0.05):
            if self.stopping.is_set():
                return False
        return not self.stopping.is_set()

    def _generate(self, request: Request) -> Generated:
        if request.reset:
            self.seed += 1
            start_stream(self.generator, self.generator.prompt, self.seed, self.start_frames)
        if request.prompt is not None:
            self.generator.set_prompt(request.prompt)
        action = self.keymap.action(request.keys, request.pointer)
        chunk = self.generator.step(action)
        return Generated(chunk.frames, chunk.index, chunk.seconds, chunk.nfe, action, chunk.prompt,
                         request.epoch)


# ------------------------------------------------------------------------------------ summary

@dataclass
class PlaySummary:
    model: str
    setting: str                        # rollout mode and device ("diagonal, cpu")
    frames_shown: int
    seconds: float                      # wall time of the play loop
    chunks: list[Generated]             # every chunk shown, in order
    stalls: int                         # display ticks that had no new frame ready (paced play only)
    prompt_changes: list[tuple[int, str]]  # (frame, prompt) typed by the player
    video: Path | None
    start_frames: int = 0               # real frames the first stream started from (0: the prompt alone)

    def lines(self) -> list[str]:
        seconds = np.array([c.seconds for c in self.chunks]) if self.chunks else np.zeros(1)
        generated = sum(len(c.frames) for c in self.chunks)
        size = f"{self.chunks[0].frames.shape[2]}x{self.chunks[0].frames.shape[1]}" if self.chunks else "?"
        lines = [
            f"played {self.model} ({size}, {self.setting}): {self.frames_shown} frames in {self.seconds:.1f} s, "
            f"{self.frames_shown / max(self.seconds, 1e-9):.1f} FPS shown",
            f"  generation  {generated / max(seconds.sum(), 1e-9):.1f} FPS, chunk latency "
            f"{seconds.mean() * 1000:.0f} ms mean / {np.percentile(seconds, 95) * 1000:.0f} ms p95, "
            f"NFE {np.mean([c.nfe for c in self.chunks] or [0]):.1f} per chunk, {self.stalls} stalls",
        ]
        if self.chunks:
            changes = "".join(f", then {prompt!r} (typed at frame {frame})" for frame, prompt in self.prompt_changes)
            lines.append(f"  prompt      {self.chunks[0].prompt!r}{changes}")
        if self.start_frames:
            lines.append(f"  start       from the model's {self.start_frames} real start frames for the prompt")
        if self.video is not None:
            lines.append(f"  video       {self.video} ({self.frames_shown} frames)")
        return lines


# ------------------------------------------------------------------------------------ fitting text to the window

def longest_fit(fits, n: int) -> int:
    """The largest k in [0, n] with fits(k), for a `fits` that holds up to some k and fails above it."""
    low, high = 0, n
    while low < high:
        mid = (low + high + 1) // 2
        low, high = (mid, high) if fits(mid) else (low, mid - 1)
    return low


def ellipsize_front(font: pygame.font.Font, text: str, width: int) -> str:
    """`text` if it fits in `width` pixels, else its longest end that fits behind an ellipsis."""
    if font.size(text)[0] <= width:
        return text
    keep = longest_fit(lambda k: font.size(ELLIPSIS + text[len(text) - k:])[0] <= width, len(text))
    return ELLIPSIS + text[len(text) - keep:]


def ellipsize_end(font: pygame.font.Font, text: str, width: int) -> str:
    """`text` if it fits in `width` pixels, else its longest start that fits before an ellipsis."""
    if font.size(text)[0] <= width:
        return text
    return text[:longest_fit(lambda k: font.size(text[:k] + ELLIPSIS)[0] <= width, len(text))] + ELLIPSIS


def fitting_prefix(font: pygame.font.Font, text: str, width: int) -> int:
    """How many leading characters of `text` fit in `width` pixels."""
    return longest_fit(lambda k: font.size(text[:k])[0] <= width, len(text))


@functools.lru_cache(maxsize=64)   # the prompt changes rarely; re-measuring it every frame cost ~10 % FPS
def wrap_text(font: pygame.font.Font, text: str, width: int, max_lines: int) -> tuple[str, ...]:
    """`text` in lines of at most `width` pixels, broken at spaces where there are any; what does not fit
    in `max_lines` lines is cut with an ellipsis at the end of the last."""
    lines: list[str] = []
    rest = text
    while rest and len(lines) < max_lines - 1 and font.size(rest)[0] > width:
        cut = max(1, fitting_prefix(font, rest, width))  # at least one character, so each line moves on
        space = rest.rfind(" ", 0, cut + 1)
        cut = space if space > 0 else cut
        lines.append(rest[:cut].rstrip())
        rest = rest[cut:].lstrip()
    return (*lines, ellipsize_end(font, rest, width))


@functools.lru_cache(maxsize=256)
def render_line(font: pygame.font.Font, line: str, colour: tuple) -> pygame.Surface:
    """A line of HUD text, rendered once: the HUD redraws the same lines every frame, and text rendering
    holds the GIL the generation thread needs."""
    return font.render(line, True, colour)


# ------------------------------------------------------------------------------------ the game loop

class PlaySession:
    """Window, HUD and input on the main thread; generation on a `ChunkWorker`.

    `paced=False` shows frames as fast as they are generated (headless runs and tests).
    `start_frames=False` starts streams from the prompt alone, not from the model's start frames.
    """

    def __init__(self, generator, model_name: str, prompt: str | None = None, seed: int = 0,
                 scale: int | None = None, record: str | None = None, paced: bool = True,
                 screenshot_dir: str | Path = ".", start_frames: bool = True):
        self.start_frames = start_stream(generator, prompt, seed, start_frames)
        self.generator, self.model_name, self.paced = generator, model_name, paced
        self.fps = generator.fps
        self.keymap = KeyMap(generator.action_spec)
        self.controls = Controls()
        self.worker = ChunkWorker(generator, self.keymap, self.controls, seed, start_frames)
        self.scale = scale or max(1, 512 // max(generator.height, generator.width))
        pygame.display.init()
        pygame.font.init()
        self.screen = pygame.display.set_mode((generator.width * self.scale, generator.height * self.scale))
        pygame.display.set_caption(f"streamvideo play - {model_name}")
        self.font = pygame.font.Font(None, 20)
        self.clock = pygame.time.Clock()
        self.recorder = Mp4Writer(record, self.fps, self.scale) if record else None
        self.screenshot_dir = Path(screenshot_dir)
        self.frame: np.ndarray = np.zeros((generator.height, generator.width, 3), np.uint8)
        self.pending: deque[np.ndarray] = deque()    # frames of the current chunk still to show
        self.chunks: list[Generated] = []
        self.shown_times: deque[float] = deque(maxlen=max(2, int(self.fps * 2)))
        self.shown = 0
        self.stalls = 0
        self.prompt_changes: list[tuple[int, str]] = []
        self.typing: str | None = None                # the prompt being typed, None when not typing
        self.paused = False
        self.running = True
        self.help_until = time.monotonic() + 4.0      # the help overlay shows for the first seconds
        self.message, self.message_until = "", 0.0

    def run(self, max_frames: int | None = None, script: dict[int, list] | None = None) -> PlaySummary:
        """Play until Esc / window close, or `max_frames` frames; `script` posts events at given frames."""
        script = dict(script or {})
        start = time.perf_counter()
        self.worker.start()
        try:
            while self.running and (max_frames is None or self.shown < max_frames):
                for event in script.pop(self.shown, []):
                    pygame.event.post(event)
                self.handle_events()
                if not self.paused:
                    self.advance()
                self.draw()
                if self.paced:
                    self.clock.tick(self.fps)
        finally:
            self.worker.stop()
            if self.recorder is not None:
                self.recorder.close()
            pygame.display.quit()
        setting = f"{self.generator.mode}, {self.generator.device}"
        return PlaySummary(self.model_name, setting, self.shown, time.perf_counter() - start, self.chunks,
                           self.stalls, self.prompt_changes, self.recorder.path if self.recorder else None,
                           self.start_frames)

    # ---------------------------------------------------------------- input

    def handle_events(self) -> None:
        for event in pygame.event.get():
            if event.type == pygame.QUIT:
                self.running = False
            elif event.type == pygame.KEYDOWN:
                self.on_key_down(event.key)
            elif event.type == pygame.KEYUP:
                self.controls.release(event.key)
            elif event.type == pygame.TEXTINPUT and self.typing is not None:
                self.typing += event.text
            elif event.type in (pygame.MOUSEBUTTONDOWN, pygame.MOUSEMOTION, pygame.MOUSEBUTTONUP):
                self.on_mouse(event)

    def on_key_down(self, key: int) -> None:
        if self.typing is not None:
            self.on_typing_key(key)
        elif key in self.keymap.keys:
            self.controls.press(key)
        elif key in (pygame.K_RETURN, pygame.K_KP_ENTER):
            self.typing = ""
            self.controls.release_all()
        elif key == pygame.K_r:
            self.controls.request_reset()
            self.pending.clear()
            self.notify("reset")
        elif key == pygame.K_p:
            self.toggle_pause()
        elif key == pygame.K_F12:
            self.screenshot()
        elif key in (pygame.K_h, pygame.K_F1):
            self.help_until = 0.0 if time.monotonic() < self.help_until else float("inf")
        elif key == pygame.K_ESCAPE:
            self.running = False

    def on_mouse(self, event: pygame.event.Event) -> None:
        """The pointer's place while the left button is held, x and y in [-1, 1] (right and up positive):
        the keymap drives a Box space's first two values with it."""
        if event.type == pygame.MOUSEMOTION:
            held = bool(event.buttons[0])
        elif event.button == 1:
            held = event.type == pygame.MOUSEBUTTONDOWN
        else:
            return   # other buttons, the wheel
        width, height = self.screen.get_size()
        x, y = event.pos
        place = (float(np.clip(2 * x / width - 1, -1, 1)), float(np.clip(1 - 2 * y / height, -1, 1)))
        self.controls.point(place if held else None)

    def on_typing_key(self, key: int) -> None:
        if key in (pygame.K_RETURN, pygame.K_KP_ENTER):
            prompt, self.typing = self.typing.strip(), None
            if prompt:
                self.controls.request_prompt(prompt)
                self.prompt_changes.append((self.shown, prompt))
                self.notify("new prompt from the next chunk")
        elif key == pygame.K_ESCAPE:
            self.typing = None
        elif key == pygame.K_BACKSPACE:
            self.typing = self.typing[:-1]

    def toggle_pause(self) -> None:
        # FPS counts frames of the stream shown per second, what a player reads as how smoothly the world
        # plays. While paused none are shown: the HUD says "paused" rather than 0 FPS (which reads as a hang)
        # or the window's redraw rate (not the game's), and the measure restarts at resume so the pause
        # does not drag the first seconds after it down.
        self.paused = not self.paused
        self.shown_times.clear()

    # ---------------------------------------------------------------- frames

    def advance(self) -> None:
        """Show the next frame; paced play never waits for the worker (a late chunk is a stall)."""
        if not self.pending:
            generated = self.worker.take(timeout=0 if self.paced else 10.0)
            if generated is None:
                self.stalls += self.paced and bool(self.chunks)  # waiting for the first chunk is no stall
                return
            if generated.epoch != self.controls.epoch:
                return  # generated before a reset
            self.pending.extend(generated.frames)
            self.chunks.append(generated)
        self.frame = self.pending.popleft()
        self.shown += 1
        self.shown_times.append(time.perf_counter())
        if self.recorder is not None:
            self.recorder.write(self.frame)

    def screenshot(self) -> None:
        self.screenshot_dir.mkdir(parents=True, exist_ok=True)
        path = self.screenshot_dir / f"streamvideo-{time.strftime('%Y%m%d-%H%M%S')}-{self.shown:06d}.png"
        pygame.image.save(self.screen, str(path))
        self.notify(f"saved {path}")

    def notify(self, message: str) -> None:
        self.message, self.message_until = message, time.monotonic() + 2.0

    # ---------------------------------------------------------------- drawing

    def draw(self) -> None:
        surface = pygame.surfarray.make_surface(self.frame.swapaxes(0, 1))
        pygame.transform.scale(surface, self.screen.get_size(), self.screen)
        self.draw_lines(self.hud_lines(), top=True)
        if self.typing is not None:
            self.draw_lines(self.typing_lines(), top=False)
        elif time.monotonic() < self.message_until:
            self.draw_lines([ellipsize_front(self.font, self.message, self.text_width)], top=False)
        if time.monotonic() < self.help_until:
            self.draw_help()
        pygame.display.flip()

    @property
    def text_width(self) -> int:
        return self.screen.get_width() - 2 * HUD_MARGIN

    def fps_text(self) -> str:
        """Frames shown per second over the last two seconds of play; "paused" while paused."""
        times = self.shown_times
        if self.paused:
            return "paused"
        if len(times) < 2 or times[-1] <= times[0]:
            return "-- FPS"
        return f"{(len(times) - 1) / (times[-1] - times[0]):4.1f} FPS"

    def hud_lines(self) -> list[str]:
        """Top lines: FPS, the chunk on screen (index as the env's info["chunk"]), its cost, its prompt."""
        last = self.chunks[-1] if self.chunks else None
        if last is None:
            return ["generating the first chunk..." + ("  PAUSED" if self.paused else "")]
        status = f"{self.fps_text()}   chunk #{last.index} {last.seconds * 1000:.0f} ms   NFE {last.nfe}"
        return [status, *wrap_text(self.font, f"prompt: {last.prompt}", self.text_width, PROMPT_LINES)]

    def typing_lines(self) -> list[str]:
        """Bottom lines while typing: the text with the cursor, its end kept in view when it is too long."""
        typed = ellipsize_front(self.font, f"new prompt: {self.typing}_", self.text_width)
        return [typed, "typing a new prompt: Enter apply   Esc cancel"]

    def draw_lines(self, lines: list[str], top: bool) -> None:
        rendered = [render_line(self.font, line, (255, 255, 255)) for line in lines]
        height = sum(r.get_height() for r in rendered) + 8
        y = 0 if top else self.screen.get_height() - height
        backdrop = pygame.Surface((self.screen.get_width(), height), pygame.SRCALPHA)
        backdrop.fill((0, 0, 0, 150))
        self.screen.blit(backdrop, (0, y))
        y += 4
        for text in rendered:
            self.screen.blit(text, (HUD_MARGIN, y))
            y += text.get_height()

    def draw_help(self) -> None:
        lines = ["keys (H toggles this help)"] + self.keymap.help_lines() + CONTROL_HELP
        rendered = [render_line(self.font, line, (255, 255, 160)) for line in lines]
        width = max(r.get_width() for r in rendered) + 16
        height = sum(r.get_height() for r in rendered) + 16
        box = pygame.Surface((width, height), pygame.SRCALPHA)
        box.fill((0, 0, 0, 190))
        x, y = (self.screen.get_width() - width) // 2, (self.screen.get_height() - height) // 2
        self.screen.blit(box, (x, y))
        for text in rendered:
            self.screen.blit(text, (x + 8, y + 8))
            y += text.get_height()


# ------------------------------------------------------------------------------------ scripted input

def key_event(kind: int, key: int) -> pygame.event.Event:
    return pygame.event.Event(kind, key=key, mod=0, unicode="", scancode=0)


def demo_script(keymap: KeyMap, frames: int, prompt: str = SCRIPTED_PROMPT) -> dict[int, list]:
    """Events for a headless run: hold each bound key in turn for 24 frames, type `prompt` halfway."""
    script: dict[int, list] = {}
    keys = [binding.keys[0] for binding in keymap.bindings]
    for n, start in enumerate(range(0, frames, 24)):
        if keys:
            key = keys[n % len(keys)]
            script.setdefault(start, []).append(key_event(pygame.KEYDOWN, key))
            script.setdefault(start + 20, []).append(key_event(pygame.KEYUP, key))
    script.setdefault(frames // 2, []).extend(typed_prompt_events(prompt))
    return script


def typed_prompt_events(prompt: str) -> list:
    """Enter, the prompt's text, Enter: what a player types to change the prompt."""
    return [key_event(pygame.KEYDOWN, pygame.K_RETURN), pygame.event.Event(pygame.TEXTINPUT, text=prompt),
            key_event(pygame.KEYDOWN, pygame.K_RETURN)]
