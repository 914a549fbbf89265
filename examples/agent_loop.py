"""A random agent in a world model: the usual Gymnasium loop, one observation = one chunk of frames.

    python examples/agent_loop.py        # prints the episode, writes videos/agent-episode-0.mp4
"""

import gymnasium as gym

import streamvideo  # noqa: F401  (registers StreamVideo-v0)

MODEL = "tiny-random"  # small random weights that run anywhere; "default" is the trained game model

env = gym.make("StreamVideo-v0", model=MODEL, prompt="a grassy meadow", render_mode="rgb_array",
               timing_info=True, max_episode_steps=24)
env = gym.wrappers.RecordVideo(env, "videos", name_prefix="agent", episode_trigger=lambda episode: True,
                               disable_logger=True)

frames, info = env.reset(seed=0)
print(f"observation: {frames.dtype} {frames.shape}, the chunk's last frame (info['frames']: the whole chunk, "
      f"{info['frames'].shape}); actions: {env.action_space}")

done = False
while not done:
    action = env.action_space.sample()
    frames, reward, terminated, truncated, info = env.step(action)
    if info["chunk"] == 12:  # halfway: change the world from the next chunk on
        env.unwrapped.set_prompt("a red knight walking on sandy desert among cacti and wandering crabs")
    print(f"chunk {info['chunk']:2d}  action {action}  {info['seconds'] * 1000:5.1f} ms  NFE {info['nfe']}"
          f"  prompt {info['prompt']!r}")
    done = terminated or truncated

env.close()  # RecordVideo writes the mp4 (one frame per step: the latest frame of each chunk)
print("video written to videos/")
