"""The window behind `render_mode="human"`: shows each chunk's frames at the model's frame rate (pygame)."""

from __future__ import annotations

import os

import numpy as np


class FrameWindow:
    """A pygame window scaled up from the model's resolution (longer side about 512 px)."""

    def __init__(self, title: str, width: int, height: int, fps: float):
        os.environ.setdefault("PYGAME_HIDE_SUPPORT_PROMPT", "1")
        try:
            import pygame
        except ImportError as err:
            raise ImportError("render_mode='human' needs pygame: pip install 'streamvideo[play]'") from err
        self.pygame = pygame
        pygame.display.init()
        scale = max(1, 512 // max(width, height))
        self.screen = pygame.display.set_mode((width * scale, height * scale))
        pygame.display.set_caption(title)
        self.clock = pygame.time.Clock()
        self.fps = fps

    def show(self, frames: np.ndarray) -> None:
        """Blit frames [T,H,W,3] one by one at `fps`, pumping window events so it stays responsive."""
        for frame in frames:
            surface = self.pygame.surfarray.make_surface(frame.swapaxes(0, 1))
            self.pygame.transform.scale(surface, self.screen.get_size(), self.screen)
            self.pygame.display.flip()
            self.pygame.event.pump()
            self.clock.tick(self.fps)

    def close(self) -> None:
        self.pygame.display.quit()
