"""Batched streams: N worlds through one forward pass per chunk, against N separate envs.

    python examples/vector_envs.py       # prints the speedup of the batched vector env
"""

import time

import gymnasium as gym

import streamvideo  # noqa: F401  (registers StreamVideo-v0)

MODEL = "tiny-random"  # small random weights that run anywhere; "default" is the trained game model
NUM_ENVS = 8
STEPS = 20
PROMPTS = ["a grassy meadow", "sandy desert", "snowy ground", "muddy dirt"] * (NUM_ENVS // 4)


def frames_per_second(envs) -> float:
    """Generated frames per second over STEPS steps of random actions (after one warm-up step)."""
    envs.reset(seed=0)
    envs.step(envs.action_space.sample())
    start = time.perf_counter()
    for _ in range(STEPS):
        _, rewards, terminated, truncated, infos = envs.step(envs.action_space.sample())
    frames = infos["frames"]                  # [N, T, H, W, 3]: every stream's whole chunk
    return STEPS * frames.shape[0] * frames.shape[1] / (time.perf_counter() - start)


# one StreamGenerator(batch_size=8): every stream has its own KV cache, prompt, seed and autoreset
batched = gym.make_vec("StreamVideo-v0", num_envs=NUM_ENVS, vectorization_mode="vector_entry_point",
                       model=MODEL, prompt=PROMPTS, max_episode_steps=10)
print(f"batched observations: {batched.observation_space.shape}, per-stream prompts: {PROMPTS}")
batched_fps = frames_per_second(batched)

# 8 separate envs stepped one after the other (Gymnasium's SyncVectorEnv)
separate = gym.make_vec("StreamVideo-v0", num_envs=NUM_ENVS, vectorization_mode="sync", model=MODEL,
                        prompt=PROMPTS[0], max_episode_steps=10)
separate_fps = frames_per_second(separate)

print(f"batched vector env : {batched_fps:7.1f} frames/s")
print(f"{NUM_ENVS} separate envs    : {separate_fps:7.1f} frames/s")
print(f"speedup            : {batched_fps / separate_fps:.2f}x")
batched.close()
separate.close()
