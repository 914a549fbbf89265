"""The eval's action detector on ground-truth frames, and its fidelity metrics."""

import numpy as np

from streamvideo.collect import make_env
from streamvideo.evaluate import MotionDetector, play_real, psnr, ssim


def test_detector_reads_the_true_moves_from_ground_truth_frames():
    env = make_env("StreamVideoGame-v0")
    hold, hits, total = 12, 0, 0
    for seed in range(6):
        actions = [a for a in (1, 4, 2, 3, 4, 1) for _ in range(hold)]
        frames, _ = play_real(env, seed, 1, actions)
        detector = MotionDetector(env.unwrapped.avatar_sprites, max_shift=hold * 2 + 2, threshold=hold * 2 / 3)
        for i in range(6):
            hits += detector(frames[i * hold], frames[(i + 1) * hold]) == actions[i * hold]
            total += 1
    assert hits / total >= 0.9


def test_fidelity_metrics():
    a = np.random.default_rng(0).integers(0, 256, (2, 16, 16, 3), dtype=np.uint8)
    assert np.all(psnr(a, a) > 90) and np.allclose(ssim(a, a), 1.0)
    assert np.all(psnr(a, 255 - a) < 10)
