"""Drive the world model from your own pygame loop: your loop owns the window, the env owns the model.

    python examples/embed_in_pygame.py                                        # arrows / WASD, Esc quits
    SDL_VIDEODRIVER=dummy python examples/embed_in_pygame.py --frames 120     # without a display

(`streamvideo play` does the same with generation on a worker thread, overlapping display and model.)
"""

import argparse

import gymnasium as gym
import pygame

import streamvideo  # noqa: F401  (registers StreamVideo-v0)
from streamvideo.apps.keymap import KeyMap

MODEL = "tiny-random"  # small random weights that run anywhere; "default" is the trained game model
SCALE = 8

parser = argparse.ArgumentParser()
parser.add_argument("--frames", type=int, default=None, help="stop after this many frames")
args = parser.parse_args()

env = gym.make("StreamVideo-v0", model=MODEL, prompt="a grassy meadow", timing_info=True)
keymap = KeyMap(env.unwrapped.generator.action_spec)  # keys -> a valid action of this model
frames, info = env.reset(seed=0)
height, width = frames.shape[1:3]

pygame.init()
screen = pygame.display.set_mode((width * SCALE, height * SCALE))
clock = pygame.time.Clock()
held = []  # keys held down, oldest first
shown = 0
running = True

while running and (args.frames is None or shown < args.frames):
    for event in pygame.event.get():
        if event.type == pygame.QUIT or (event.type == pygame.KEYDOWN and event.key == pygame.K_ESCAPE):
            running = False
        elif event.type == pygame.KEYDOWN:
            held.append(event.key)
        elif event.type == pygame.KEYUP and event.key in held:
            held.remove(event.key)

    for frame in info["frames"]:  # show the whole chunk at the model's frame rate
        surface = pygame.surfarray.make_surface(frame.swapaxes(0, 1))
        screen.blit(pygame.transform.scale(surface, screen.get_size()), (0, 0))
        pygame.display.flip()
        clock.tick(env.metadata["render_fps"])
        shown += 1

    frames, reward, terminated, truncated, info = env.step(keymap.action(held))

print(f"showed {shown} frames; the last chunk took {info['seconds'] * 1000:.0f} ms to generate")
env.close()
pygame.quit()
