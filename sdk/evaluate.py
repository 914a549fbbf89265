"""`streamvideo eval --model M --env StreamVideoGame-v0`: a world model against the real game.

Both start from the same context frames and get the same actions (each held for `hold_chunks`
chunks). Reports:
- fidelity: PSNR / SSIM per generated frame, averaged over horizons 8 / 16 / 32 frames;
- action following: the avatar's world displacement over each held action, measured on the frames
  by `MotionDetector` (avatar template match + camera shift), agrees with the action; the
  detector's accuracy on the ground-truth frames is reported first;
- drift over a long rollout (default 3 minutes): per-segment saturation, sharpness (Laplacian
  variance), frame-to-frame change and their slopes in % of the first segment per minute;
- speed: FPS and NFE per chunk of the streaming generator.
Writes OUT/eval.json, OUT/eval.png and OUT/side_by_side.mp4 (real | model).
A teacher folder (role "teacher") is sampled bidirectionally, many steps, in windows of its clip
length (fidelity and action following only).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from .collect import make_env

MOVES = {1: (0, -1), 2: (0, 1), 3: (-1, 0), 4: (1, 0)}   # action -> unit world displacement (x, y)


# --------------------------------------------------------------------------- metrics

def psnr(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """uint8 [T, H, W, 3] pairs -> PSNR per frame [T]."""
    mse = ((a.astype(np.float64) - b.astype(np.float64)) ** 2).mean(axis=(1, 2, 3))
    return 10 * np.log10(255.0**2 / np.maximum(mse, 1e-10))


def ssim(a: np.ndarray, b: np.ndarray, window: int = 7) -> np.ndarray:
    """Mean SSIM per frame [T] (uniform window, per channel), uint8 [T, H, W, 3] inputs."""
    x, y = (torch.from_numpy(v).permute(0, 3, 1, 2).double() / 255 for v in (a, b))
    pool = lambda v: F.avg_pool2d(v, window, 1)  # noqa: E731
    mx, my = pool(x), pool(y)
    vx, vy, cxy = pool(x * x) - mx**2, pool(y * y) - my**2, pool(x * y) - mx * my
    c1, c2 = 0.01**2, 0.03**2
    s = ((2 * mx * my + c1) * (2 * cxy + c2)) / ((mx**2 + my**2 + c1) * (vx + vy + c2))
    return s.mean(dim=(1, 2, 3)).numpy()


def frame_stats(frames: np.ndarray) -> dict:
    """Saturation, sharpness (Laplacian variance) and frame-to-frame change of uint8 [T, H, W, 3]."""
    f = frames.astype(np.float64) / 255
    sat = ((f.max(-1) - f.min(-1)) / np.maximum(f.max(-1), 1e-6)).mean()
    gray = f.mean(-1)
    lap = gray[:, :-2, 1:-1] + gray[:, 2:, 1:-1] + gray[:, 1:-1, :-2] + gray[:, 1:-1, 2:] - 4 * gray[:, 1:-1, 1:-1]
    change = np.abs(np.diff(f, axis=0)).mean() if len(f) > 1 else 0.0
    return {"saturation": float(sat), "sharpness": float(lap.var(axis=(1, 2)).mean()), "change": float(change)}


def slope_percent_per_minute(values: list[float], minutes: list[float]) -> float:
    """Least-squares slope, in % of the first value per minute."""
    if len(values) < 2:
        return 0.0
    slope = np.polyfit(minutes, values, 1)[0]
    return float(100 * slope / max(abs(values[0]), 1e-9))


# --------------------------------------------------------------------------- action detector

class MotionDetector:
    """Which way did the avatar move between two frames? World displacement = avatar's screen
    displacement (masked template match with the game's four avatar sprites) + camera shift
    (best whole-frame translation along one axis)."""

    def __init__(self, sprites: dict, max_shift: int, threshold: float):
        self.sprites = [(rgb.astype(np.float64), mask.astype(bool)) for rgb, mask in sprites.values()]
        self.max_shift, self.threshold = max_shift, threshold

    def avatar_xy(self, frame: np.ndarray) -> np.ndarray:
        f = frame.astype(np.float64)
        best, where = np.inf, (0, 0)
        for rgb, mask in self.sprites:
            h, w = mask.shape
            win = np.lib.stride_tricks.sliding_window_view(f, (h, w, 3))[:, :, 0]   # [Y, X, h, w, 3]
            cost = (((win - rgb) ** 2) * mask[..., None]).sum(axis=(2, 3, 4)) / mask.sum()
            y, x = np.unravel_index(np.argmin(cost), cost.shape)
            if cost[y, x] < best:
                best, where = cost[y, x], (x + w / 2, y + h / 2)
        return np.array(where)

    def camera_shift(self, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        """d such that b(p) ~ a(p + d): how far the camera moved from a to b."""
        a, b = a.astype(np.float64), b.astype(np.float64)
        size = a.shape[0]
        best, shift = np.inf, np.zeros(2)
        for axis in (0, 1):
            for d in range(-self.max_shift, self.max_shift + 1):
                lo, hi = max(d, 0), size + min(d, 0)
                if axis == 1:
                    err = np.abs(b[:, lo - d:hi - d] - a[:, lo:hi]).mean()
                else:
                    err = np.abs(b[lo - d:hi - d] - a[lo:hi]).mean()
                if err < best:
                    best, shift = err, np.array([d, 0] if axis == 1 else [0, d])
        return shift

    def __call__(self, a: np.ndarray, b: np.ndarray) -> int:
        """-> 0 (no move) or the move action 1-4 that best explains frames a -> b."""
        move = self.avatar_xy(b) - self.avatar_xy(a) + self.camera_shift(a, b)
        if np.abs(move).max() < self.threshold:
            return 0
        axis = int(np.argmax(np.abs(move)))
        sign = int(np.sign(move[axis]))
        return next(k for k, v in MOVES.items() if v[axis] == sign)


# --------------------------------------------------------------------------- episodes

def action_plan(rng: np.random.Generator, segments: int) -> list[int]:
    """One held action per segment: a move most of the time, sometimes a pause."""
    return [int(rng.choice([1, 2, 3, 4])) if rng.random() > 0.1 else 0 for _ in range(segments)]


def play_real(env, seed: int, context: int, actions: list[int]):
    """Reset, record `context` frames (no-ops), then one frame per action -> (frames [T, H, W, 3], prompt)."""
    frame, info = env.reset(seed=seed)
    frames = [frame]
    for _ in range(context - 1):
        frame, *_ = env.step(0)
        frames.append(frame)
    for a in actions:
        frame, *_ = env.step(a)
        frames.append(frame)
    return np.stack(frames), info["prompt"]


def generate_student(gen, context: np.ndarray, prompt: str, seed: int, chunk_actions: list[int]) -> np.ndarray:
    gen.reset(prompt=prompt, seed=seed, context_frames=context)
    return np.concatenate([gen.step(a).frames for a in chunk_actions])


def generate_teacher(folder: Path, context: np.ndarray, prompt: str, seed: int, chunk_actions: list[int],
                     steps: int) -> np.ndarray:
    """The bidirectional teacher, windowed: each window continues the previous window's last chunk."""
    from .actions import ActionSpec
    from .presets import from_folder
    from .train.data import frames_to_tensor
    from .train.objectives import ClipCond, ode_sample
    model, codec, text, _, _, _, _ = from_folder(folder, "cpu", torch.float32)
    cf, spec = model.config.chunk_frames, model.config.action
    window = json.loads((folder / "streamvideo.json").read_text()).get("clip_chunks", 4)
    torch.manual_seed(seed)
    tokens, mask = text.encode([prompt])
    ctx_lat = codec.encode(frames_to_tensor(context)[None])[:, :, -cf:]             # [1, C, cf, h, w]
    out, state = [], codec.init_state(1)
    _, state = codec.decode(ctx_lat, state)
    noop = ActionSpec.encode(spec, [spec.noop()])
    for start in range(0, len(chunk_actions), window - 1):
        acts = chunk_actions[start:start + window - 1]
        acts = acts + [acts[-1]] * (window - 1 - len(acts))
        action = torch.cat([noop] + [spec.encode([a]) for a in acts]).repeat_interleave(cf, 0)[None]   # [1, F, A]
        x0 = torch.cat([ctx_lat, torch.zeros_like(ctx_lat).repeat(1, 1, window - 1, 1, 1)], dim=2)
        ctx = (torch.arange(x0.shape[2]) < cf)[None]
        x, _ = ode_sample(model, x0, ctx, ClipCond(tokens, mask, action), steps)
        frames, state = codec.decode(x[:, :, cf:], state)
        out.append((frames[0].clamp(0, 1) * 255).round().byte().permute(0, 2, 3, 1).numpy())
        ctx_lat = x[:, :, -cf:]
    return np.concatenate(out)[:len(chunk_actions) * cf * codec.temporal_factor]


# --------------------------------------------------------------------------- CLI

def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", required=True, help="model folder, or a shipped name such as 'default'")
    parser.add_argument("--env", default="StreamVideoGame-v0", help="Gymnasium id of the real game")
    parser.add_argument("--episodes", type=int, default=8, help="fidelity / action-following episodes")
    parser.add_argument("--hold-chunks", type=int, default=4, help="chunks each action is held for")
    parser.add_argument("--horizons", default="8,16,32", help="frame horizons of the fidelity averages")
    parser.add_argument("--drift-seconds", type=float, default=180.0, help="length of the drift rollout (0 = skip)")
    parser.add_argument("--segment-seconds", type=float, default=10.0, help="drift statistics per segment")
    parser.add_argument("--teacher-steps", type=int, default=None, help="Euler steps for a teacher folder")
    parser.add_argument("--seed", type=int, default=1000, help="first episode seed (held-out from collect's 0)")
    parser.add_argument("--out", default="runs/eval", help="output folder")
    parser.add_argument("--threads", type=int, default=2, help="torch CPU threads")


def model_meta(name: str) -> tuple[Path, dict]:
    from .presets import MODEL_FILE, PACKAGE_WEIGHTS
    folder = PACKAGE_WEIGHTS / name if (PACKAGE_WEIGHTS / name / MODEL_FILE).exists() else Path(name)
    if not (folder / MODEL_FILE).exists():
        raise SystemExit(f"streamvideo eval: no model folder {name!r} (expected a folder with {MODEL_FILE})")
    return folder, json.loads((folder / MODEL_FILE).read_text())


def run(args: argparse.Namespace) -> int:
    import streamvideo
    torch.set_num_threads(args.threads)
    folder, meta = model_meta(args.model)
    is_teacher = meta.get("role") == "teacher"
    gen = streamvideo.load(str(folder), device="cpu", kv_noise=meta.get("kv_noise"))
    fpc, fps = gen.frames_per_chunk, gen.fps
    horizons = [int(h) for h in args.horizons.split(",")]
    n_chunks = -(-max(horizons) // fpc)
    n_chunks = -(-n_chunks // args.hold_chunks) * args.hold_chunks
    env = make_env(args.env)
    game = env.unwrapped
    rng = np.random.default_rng(args.seed)
    detector = None
    fid_psnr, fid_ssim, hits, gt_hits, total = [], [], 0, 0, 0
    video = None
    for e in range(args.episodes):
        seed = args.seed + e
        plan = action_plan(rng, n_chunks // args.hold_chunks)
        chunk_actions = [a for a in plan for _ in range(args.hold_chunks)]
        real, prompt = play_real(env, seed, fpc, [a for a in chunk_actions for _ in range(fpc)])
        detector = MotionDetector(game.avatar_sprites, max_shift=args.hold_chunks * fpc * game.speed + 2,
                                  threshold=args.hold_chunks * fpc * game.speed / 3)
        context, real = real[:fpc], real[fpc:]
        if is_teacher:
            fake = generate_teacher(folder, context, prompt, seed, chunk_actions,
                                    args.teacher_steps or meta.get("sample_steps", 32))
        else:
            fake = generate_student(gen, context, prompt, seed, chunk_actions)
        fid_psnr.append(psnr(real, fake))
        fid_ssim.append(ssim(real, fake))
        seg = args.hold_chunks * fpc
        for i, a in enumerate(plan):
            if a == 0:
                continue
            before = context[-1] if i == 0 else real[i * seg - 1]
            before_fake = context[-1] if i == 0 else fake[i * seg - 1]
            gt_hits += detector(before, real[(i + 1) * seg - 1]) == a
            hits += detector(before_fake, fake[(i + 1) * seg - 1]) == a
            total += 1
        if video is None:
            video = np.concatenate([real, fake], axis=2)
    p, s = np.stack(fid_psnr), np.stack(fid_ssim)                                   # [episodes, T]
    result = {
        "model": str(folder), "role": meta.get("role"), "episodes": args.episodes,
        "fidelity": {f"psnr@{h}": float(p[:, :h].mean()) for h in horizons}
        | {f"ssim@{h}": float(s[:, :h].mean()) for h in horizons},
        "action_following": {"accuracy": hits / max(total, 1), "detector_accuracy_on_ground_truth":
                             gt_hits / max(total, 1), "segments": total},
    }
    drift = None
    if not is_teacher and args.drift_seconds > 0:
        drift = measure_drift(gen, env, args, rng)
        result["drift"] = drift
        result["speed"] = {"fps": gen.stats["fps"], "nfe_per_chunk": gen.stats["nfe_per_chunk"],
                           "mean_seconds_per_chunk": gen.stats["mean_seconds"], "frames_per_chunk": fpc}
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "eval.json").write_text(json.dumps(result, indent=2))
    plot(out / "eval.png", p, drift)
    import imageio
    imageio.mimsave(out / "side_by_side.mp4", list(np.repeat(np.repeat(video, 4, 1), 4, 2)), fps=fps)
    print(json.dumps(result, indent=2))
    return 0


def measure_drift(gen, env, args, rng) -> dict:
    """One long rollout from a real start; statistics per segment and their slopes."""
    fpc = gen.frames_per_chunk
    context, prompt = play_real(env, args.seed - 1, fpc, [])
    gen.reset(prompt=prompt, seed=args.seed - 1, context_frames=context)
    n_chunks = int(args.drift_seconds * gen.fps) // fpc
    per_segment = max(1, int(args.segment_seconds * gen.fps) // fpc)
    plan = action_plan(rng, -(-n_chunks // args.hold_chunks))
    segments, buf = [], []
    for k in range(n_chunks):
        buf.append(gen.step(plan[k // args.hold_chunks]).frames)
        if len(buf) == per_segment:
            segments.append(frame_stats(np.concatenate(buf)))
            buf = []
    minutes = [(i + 0.5) * args.segment_seconds / 60 for i in range(len(segments))]
    keys = ("saturation", "sharpness", "change")
    return {"segments": segments, "minutes": minutes,
            "slope_percent_per_minute": {k: slope_percent_per_minute([s[k] for s in segments], minutes) for k in keys}}


def plot(path: Path, psnr_curve: np.ndarray, drift: dict | None) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, axes = plt.subplots(1, 2 if drift else 1, figsize=(10 if drift else 5, 3.5), squeeze=False)
    ax = axes[0, 0]
    ax.plot(np.arange(1, psnr_curve.shape[1] + 1), psnr_curve.mean(0))
    ax.set(xlabel="generated frame", ylabel="PSNR (dB)", title="fidelity vs the real game")
    if drift:
        ax = axes[0, 1]
        for k in ("saturation", "sharpness", "change"):
            v = np.array([s[k] for s in drift["segments"]])
            ax.plot(drift["minutes"], v / max(abs(v[0]), 1e-9), label=k)
        ax.set(xlabel="minutes", ylabel="relative to first segment", title="drift")
        ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
