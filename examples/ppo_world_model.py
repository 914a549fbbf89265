"""PPO (Stable-Baselines3, CnnPolicy) trained inside the world model, through the batched vector env.

    pip install 'streamvideo[rl]'
    OMP_NUM_THREADS=1 python examples/ppo_world_model.py                       # the shipped model, ~3.5 minutes
    OMP_NUM_THREADS=1 python examples/ppo_world_model.py --model tiny-random   # a smoke run, ~1 minute

The env gives no reward of its own, so this script defines one with `reward_fn`: the share of the chunk's
pixels in the knight's red, "keep the knight in view". Why this one: it is what the shipped model's actions
measurably change. Over 20 chunks of each action held (2 seeds), the model draws the knight crisply while
it stands still (no-op: 0.5% of the pixels) and blurs it away while it walks or plants (0.1-0.27%). Walking
barely moves the knight or the view in this small 64x64 model, and the change between frames is *higher*
under no-op (flicker), so a "keep moving" reward would also teach standing still, for the wrong reason.
PPO should learn to prefer no-op. tiny-random has random weights: its frames ignore the actions, so there
is nothing to learn (mean reward stays put); it only checks that everything runs.
"""

import argparse
import time

import gymnasium as gym
import numpy as np
from stable_baselines3 import PPO
from stable_baselines3.common.evaluation import evaluate_policy
from stable_baselines3.common.vec_env import VecMonitor

import streamvideo  # noqa: F401  (registers StreamVideo-v0)
from streamvideo.envs.sb3 import SB3VecEnv

parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
parser.add_argument("--model", default="default", help="preset name or model folder (default: the shipped model)")
parser.add_argument("--envs", type=int, default=8, help="streams in one batched forward pass")
parser.add_argument("--episode-steps", type=int, default=16, help="chunks per episode (max_episode_steps)")
parser.add_argument("--timesteps", type=int, default=1536, help="PPO training steps, all envs together")
parser.add_argument("--n-steps", type=int, default=16, help="PPO rollout length per env")
parser.add_argument("--seed", type=int, default=0)
args = parser.parse_args()


def knight_in_view(frames: np.ndarray, action, info: dict) -> float:
    """Percent of the chunk's pixels (uint8 [T, H, W, 3]) in the knight's red."""
    r, g, b = (frames[..., c].astype(np.int16) for c in range(3))
    return float(((r > 150) & (g < 100) & (b < 100)).mean() * 100)


# one StreamGenerator(batch_size=envs): every env step is one forward pass for all streams
envs = gym.make_vec("StreamVideo-v0", num_envs=args.envs, model=args.model, observation="frame",
                    max_episode_steps=args.episode_steps, reward_fn=knight_in_view)
venv = VecMonitor(SB3VecEnv(envs))  # VecMonitor: episode returns for PPO's logs and evaluate_policy
# a few thousand steps fit in minutes on a CPU: short rollouts, many epochs and a large learning rate make
# the most of them; gamma 0.9 because a chunk's reward depends on the last few actions, not on distant ones
model = PPO("CnnPolicy", venv, n_steps=args.n_steps, batch_size=64, n_epochs=10, learning_rate=3e-3, gamma=0.9,
            seed=args.seed, verbose=0)


def report(label: str, deterministic: bool) -> None:
    """Mean episode reward over one episode per env, and env steps/s meanwhile."""
    start = time.perf_counter()
    rewards, lengths = evaluate_policy(model, model.get_env(), n_eval_episodes=args.envs,
                                       deterministic=deterministic, return_episode_rewards=True)
    seconds = time.perf_counter() - start
    print(f"{label}: mean episode reward {np.mean(rewards):.2f} +- {np.std(rewards):.2f} "
          f"over {len(rewards)} episodes of {args.episode_steps} steps, {sum(lengths) / seconds:.1f} env steps/s")


report("before training (the untrained policy: about uniformly random actions)", deterministic=False)
report("before training (the untrained policy's most likely actions)", deterministic=True)
start = time.perf_counter()
model.learn(total_timesteps=args.timesteps)
seconds = time.perf_counter() - start
print(f"training: {model.num_timesteps} steps in {seconds:.0f} s, {model.num_timesteps / seconds:.1f} env steps/s "
      f"(generation and PPO updates)")
report("after training (the trained policy's most likely actions)", deterministic=True)
venv.close()
