"""Write uint8 RGB frames to an H.264 mp4 (imageio-ffmpeg), playable in browsers and common players."""

from __future__ import annotations

from pathlib import Path

import imageio.v2 as imageio
import numpy as np


class Mp4Writer:
    """Append frames [H,W,3] or chunks [T,H,W,3] (uint8 RGB); odd sizes are padded to even (yuv420p needs it).

    with Mp4Writer("out.mp4", fps=16) as video:
        video.write(chunk.frames)
    """

    def __init__(self, path: str | Path, fps: float, scale: int = 1):
        """scale: ffmpeg enlarges each frame this many times, pixels kept square (nearest neighbour), so the
        caller pipes frames at their own size."""
        self.path = Path(path)
        if self.path.suffix.lower() != ".mp4":
            raise ValueError(f"video path must end in .mp4, got {str(path)!r}")
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.fps = fps
        self.frames_written = 0
        # one encoder thread at a fast preset: the recorder shares the CPU with generation (`play --record`)
        params = ["-preset", "veryfast", "-threads", "1"]
        if scale > 1:
            params += ["-vf", f"scale=iw*{scale}:ih*{scale}:flags=neighbor"]
        self._writer = imageio.get_writer(self.path, format="FFMPEG", mode="I", fps=fps, codec="libx264",
                                          pixelformat="yuv420p", macro_block_size=1, quality=8,
                                          ffmpeg_params=params)

    def write(self, frames: np.ndarray) -> None:
        frames = np.asarray(frames)
        if frames.ndim == 3:
            frames = frames[None]
        if frames.ndim != 4 or frames.shape[-1] != 3 or frames.dtype != np.uint8:
            raise ValueError(f"expected uint8 frames [H,W,3] or [T,H,W,3], got {frames.dtype} {frames.shape}")
        pad_h, pad_w = frames.shape[1] % 2, frames.shape[2] % 2
        if pad_h or pad_w:
            frames = np.pad(frames, ((0, 0), (0, pad_h), (0, pad_w), (0, 0)), mode="edge")
        for frame in frames:
            self._writer.append_data(frame)
        self.frames_written += len(frames)

    def close(self) -> None:
        self._writer.close()

    def __enter__(self) -> Mp4Writer:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
