"""The figures and the table of `streamvideo eval`: contact sheet, prompt-switch sheet, PSNR / drift plot,
and table.md (one row per model and per baseline, then what the measures score on real frames). The
built-in game's columns (avatar, prompt switch, memory) appear where its results have them."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from .agnostic import Setting

SHEET_FRAMES = (1, 4, 8, 16, 32, 64)


def grid_png(path: Path, headers: list[str], rows: list[tuple[str, list[np.ndarray | None]]], scale: int = 3) -> None:
    """Frames in a labelled grid, each upscaled `scale` times (nearest neighbour, so pixels stay sharp);
    None leaves its cell blank. The first row's first frame sets the cell size."""
    from PIL import Image, ImageDraw
    h, w = (v * scale for v in rows[0][1][0].shape[:2])
    left, top, gap = 100, 14, 2
    img = Image.new("RGB", (left + len(headers) * (w + gap), top + len(rows) * (h + gap)), "white")
    draw = ImageDraw.Draw(img)
    for j, text in enumerate(headers):
        draw.text((left + j * (w + gap) + 2, 1), text, fill="black")
    for i, (label, frames) in enumerate(rows):
        y = top + i * (h + gap)
        draw.text((2, y + h // 2 - 5), label, fill="black")
        for j, f in enumerate(frames):
            if f is not None:
                img.paste(Image.fromarray(f).resize((w, h), Image.NEAREST), (left + j * (w + gap), y))
    img.save(path)


def contact_sheet(path: Path, s: Setting, frames: list[np.ndarray]) -> None:
    """Per episode a real row and a generated row: the start frame, then frames 1, 4, 8, 16, 32, 64 (blank
    past the end of an episode that ended earlier)."""
    ts = [t for t in SHEET_FRAMES if t < max(map(len, frames))]
    at = lambda f, t: f[t] if t < len(f) else None
    rows = []
    for e, (real, fake) in enumerate(zip(s.episodes, frames)):
        rows.append((f"ep {e} real", [at(real.frames, t) for t in (0, *ts)]))
        rows.append((f"ep {e} generated", [at(fake, t) for t in (0, *ts)]))
    grid_png(path, ["start"] + [f"frame {t}" for t in ts], rows)


def switch_sheet(path: Path, switch: dict) -> None:
    """The last frame of each chunk before and after the prompt switch, without and with recache."""
    n = len(switch["no_recache"]) // 2
    headers = [f"chunk {k - n:+d}" if k < n else f"chunk +{k - n + 1}" for k in range(2 * n)]
    grid_png(path, headers, [(key.replace('_', ' '), frames) for key, frames in switch.items()])


def plot(path: Path, curves: dict[str, np.ndarray], drift_result: dict | None) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, axes = plt.subplots(1, 2 if drift_result else 1, figsize=(10 if drift_result else 5, 3.5), squeeze=False)
    ax = axes[0, 0]
    for name, curve in curves.items():
        ax.plot(np.arange(1, len(curve) + 1), curve, label=name)
    ax.set(xlabel="generated frame", ylabel="PSNR (dB)", title="fidelity vs the real env")
    ax.legend()
    if drift_result:
        ax = axes[0, 1]
        for k in ("saturation", "sharpness", "change", "pixel_std"):
            v = np.array([seg[k] for seg in drift_result["segments"]])
            ax.plot(drift_result["minutes"], v / max(abs(v[0]), 1e-9), label=k)
        ax.set(xlabel="minutes", ylabel="relative to first segment", title="drift")
        ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def pct(x) -> str:
    return "-" if x is None else f"{100 * x:.0f} %"


def game_cells(r: dict) -> list[str]:
    """The built-in game's own columns: avatar presence, prompt switch, memory."""
    pf, mem = r.get("prompt_following") or {}, r.get("memory") or {}
    return [pct(r["avatar_presence"]),
            " / ".join(pct((pf.get(k) or {}).get("new_theme_after")) for k in ("no_recache", "recache")),
            f"{pct(mem.get('planted'))} / {pct(mem.get('remembered'))}"]


def table_row(name: str, r: dict) -> str:
    fid, a, dr, sp = (r.get(k) or {} for k in ("fidelity", "action_following", "drift", "speed"))
    psnrs = " / ".join(f"{v:.1f}" for k, v in fid.items() if k.startswith("psnr"))
    ssims = " / ".join(f"{v:.2f}" for k, v in fid.items() if k.startswith("ssim"))
    cells = [name, psnrs, ssims, f"{pct(a['accuracy'])} of {a['segments']}" if a else "-"]
    if "avatar_presence" in r:
        cells += game_cells(r)
    if dr:
        slopes = dr["slope_percent_per_minute"]
        cells.append(f"{slopes['saturation']:+.1f} / {slopes['sharpness']:+.1f}")
        cells.append(f"{dr['pixel_std_vs_real'][-1]:.2f}" + (" collapsed" if dr["collapsed"] else "")
                     if dr["pixel_std_vs_real"] else "-")
    else:
        cells += ["-", "-"]
    cells += [f"{sp['fps']:.1f}", f"{sp['nfe_per_chunk']:.2f}"] if sp else ["-", "-"]
    return "| " + " | ".join(cells) + " |"


def header(horizons: list[int], game: bool) -> list[str]:
    h = " / ".join(str(v) for v in horizons)
    columns = ["model", f"PSNR@{h} (dB)", f"SSIM@{h}", "action following"]
    if game:
        columns += ["avatar presence", "prompt -> new theme (no recache / recache)", "memory (planted / remembered)"]
    columns += ["drift %/min (saturation / sharpness)", "pixel std vs real (end)", "FPS", "NFE/chunk"]
    return ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]


def game_truth(s: Setting) -> str:
    g = s.ground_truth
    return (f"Detectors on real frames ({s.label()}): action following "
            f"{pct(g['action_following'])} (chance {pct(g['action_chance'])}); avatar presence "
            f"{pct(g['avatar_presence'])} on real frames, {pct(g['avatar_presence_avatar_removed'])} "
            f"with the avatar painted out, {pct(g['avatar_presence_theme_mean'])} on theme-mean frames; "
            f"theme classifier {pct(g.get('theme_classifier'))} (chance 50 %); memory "
            f"{pct((g.get('memory_with_flower') or {}).get('remembered'))} with a planted flower, "
            f"{pct((g.get('memory_without_flower') or {}).get('remembered'))} without.")


def env_truth(s: Setting) -> str:
    g = s.ground_truth
    return (f"Real rollouts scored as a model's ({s.label()}): action following {pct(g['action_following'])} "
            f"(chance {pct(g['action_chance'])}); the real rollouts of two different actions differ in "
            f"{pct(g['action_separability'])} of pairs.")


def write_table(path: Path, models: dict[str, tuple[dict, Setting]], threads: int) -> None:
    settings = list({id(s): s for _, s in models.values()}.values())
    game = "avatar_presence" in next(iter(models.values()))[0]
    lines = header(settings[0].horizons, game) + [table_row(name, result) for name, (result, _) in models.items()]
    for s in settings:
        label = f" ({s.label()})" if len(settings) > 1 else ""
        lines += [table_row(f"baseline: {name}{label}", r) for name, r in s.baselines.items()]
    lines.append("")
    lines += [game_truth(s) if game else env_truth(s) for s in settings if s.ground_truth]
    lines.append(f"Torch CPU threads: {threads}.")
    path.write_text("\n".join(lines) + "\n")
