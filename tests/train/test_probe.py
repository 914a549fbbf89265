"""The action probe on ground truth: a scroll world whose keys move the picture by one latent pixel, an oracle
that knows each key's effect (it predicts the true next frame under whatever key it is given) and an
action-blind model (it copies the frame before). The blind model must read 1.00 and chance, the oracle far
above, and the probe must not disturb the training run's random numbers."""

import math
from types import SimpleNamespace

import pytest
import torch
import torch.nn as nn

from streamvideo.engine import flow
from streamvideo.engine.actions import ActionSpec
from streamvideo.engine.kv_cache import KVCache
from streamvideo.train.probe import (
    CONTEXT_CHUNKS,
    ROLLOUT_CHUNKS,
    ProbeWindows,
    action_probe,
    best_shift,
    rollout_check,
)

SPEC = ActionSpec("discrete", 6)
SHIFTS = {0: (0, 0), 1: (0, -1), 2: (0, 1), 3: (-1, 0), 4: (1, 0), 5: (0, 0)}   # the game's keys, in latent pixels
CHUNK = 1


def moved(frame: torch.Tensor, key: int) -> torch.Tensor:
    """The next frame under key: frame(p + d), the entering edge zero (nothing known there)."""
    dx, dy = SHIFTS[key]
    out = torch.zeros_like(frame)
    h, w = frame.shape[-2:]
    out[..., max(-dy, 0):h - max(dy, 0), max(-dx, 0):w - max(dx, 0)] = \
        frame[..., max(dy, 0):h + min(dy, 0), max(dx, 0):w + min(dx, 0)]
    return out


def scroll_clips(n: int, frames: int, channels=4, size=8, seed=0) -> tuple[torch.Tensor, torch.Tensor]:
    """n clips [n, C, frames, h, w] of the scroll world under random keys, and the keys one-hot [n, frames, 6]."""
    g = torch.Generator().manual_seed(seed)
    keys = torch.randint(0, 6, (n, frames), generator=g)
    clips = [torch.randn(n, channels, size, size, generator=g)]
    for f in range(1, frames):
        clips.append(torch.stack([moved(clips[-1][i], int(keys[i, f])) for i in range(n)]))
    return torch.stack(clips, dim=2), torch.eye(6)[keys]


def scroll_windows(n=48, frames=4) -> ProbeWindows:
    """Windows of the scroll world, and for the rollout check their clips long enough to roll out."""
    x0, action = scroll_clips(n, frames)
    anchor = torch.cat([torch.zeros_like(x0[:, :, :1]), x0[:, :, :-1]], dim=2)     # the frame before each frame
    sequence, sequence_action = scroll_clips(n, (CONTEXT_CHUNKS + ROLLOUT_CHUNKS) * CHUNK, seed=1)
    return ProbeWindows(x0, action, anchor, torch.zeros(n, 2, 8), torch.ones(n, 2, dtype=torch.bool), CHUNK,
                        sequence, sequence_action)


class KnownEffect(nn.Module):
    """Predicts x0 = the frame before, moved by the given key (oracle=True), or unmoved (action-blind), and
    returns the velocity that gives that x0; context frames (sigma 0) are returned as they are."""

    def __init__(self, oracle: bool):
        super().__init__()
        self.oracle = oracle
        self.config = SimpleNamespace(reads_anchor=True, chunk_frames=CHUNK)   # as the samplers check

    def make_cache(self, batch_size, height, width, **kw):   # the engine's rollout: the cache holds only the anchor
        return KVCache(1, batch_size, CHUNK * height * width, 1, 1, **kw)

    def forward(self, xt, t, text, text_mask, action, causal=False, anchor=None, cache=None, write_chunks=0):
        keys = action.argmax(-1)                                                      # [B, F]
        x0 = torch.stack([torch.stack([moved(anchor[b, :, f], int(keys[b, f]) if self.oracle else 0)
                                       for f in range(xt.shape[2])], dim=1) for b in range(len(xt))])
        sigma = flow.frame_sigma(t / 1000, xt)
        return torch.where(sigma > 0, (xt - x0) / sigma.clamp(min=1e-6), torch.zeros_like(xt))


def test_shift_detector_reads_the_true_shift():
    frame = torch.randn(3, 4, 8, 8)
    for key, (dx, dy) in SHIFTS.items():
        assert best_shift(moved(frame, key), frame).tolist() == [[dx, dy]] * 3


def test_action_blind_model_reads_one_and_chance():
    out = action_probe(KnownEffect(oracle=False), scroll_windows(), SPEC, sample_steps=4)
    for sigma in (0.3, 0.6, 0.9):
        assert out[f"gap@{sigma}"] == pytest.approx(1.0, abs=1e-6)
    assert out["direction"] == pytest.approx(out["direction_chance"])
    assert out["direction_chance"] == pytest.approx(2 / 6)
    assert out["direction_real"] == 1.0
    assert out["probe_moved"] > 20 and out["probe_still"] > 3


def test_oracle_reads_far_above_one_and_every_direction():
    out = action_probe(KnownEffect(oracle=True), scroll_windows(), SPEC, sample_steps=4)
    for sigma in (0.3, 0.6, 0.9):
        assert math.isinf(out[f"gap@{sigma}"]) or out[f"gap@{sigma}"] > 100
    assert out["direction"] == 1.0 and out["x0_err_moved"] < 1e-6 < out["copy_err_moved"]


def test_probing_leaves_the_runs_random_numbers_alone():
    torch.manual_seed(7)
    expected = torch.rand(3)
    torch.manual_seed(7)
    action_probe(KnownEffect(oracle=True), scroll_windows(n=8), SPEC, sample_steps=2)
    assert torch.equal(torch.rand(3), expected)


def test_spaces_without_whole_pixel_moves_report_no_direction():
    windows = scroll_windows()
    still = ProbeWindows(windows.anchor.clone(), windows.action, windows.anchor, windows.text, windows.text_mask, 1)
    still.x0[:, :, -1] = still.x0[:, :, -2]       # nothing ever moves
    assert "direction" not in action_probe(KnownEffect(oracle=False), still, SPEC, sample_steps=2)


def test_rollout_check_reads_no_error_for_the_oracle_and_copying_for_the_blind_model():
    """On its own frames the oracle stays exact chunk after chunk; the action-blind model copies the last real
    frame forever, so its last chunk's error is copying's."""
    windows = scroll_windows(n=8)
    oracle = rollout_check(KnownEffect(oracle=True), windows, SPEC, sample_steps=2)
    assert oracle["rollout_err_first"] < 1e-10 and oracle["rollout_err_last"] < 1e-10 < oracle["rollout_copy_last"]
    blind = rollout_check(KnownEffect(oracle=False), windows, SPEC, sample_steps=2)
    assert blind["rollout_err_last"] == pytest.approx(blind["rollout_copy_last"], rel=1e-5)
    assert blind["rollout_err_first"] > 0.5
