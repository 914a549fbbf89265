"""The built-in ground-truth game: determinism, movement, camera, flowers, themes, speed."""

from __future__ import annotations

import time

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env

from streamvideo.envs.game.env import GAME_ID, MAX_EPISODE_STEPS, StreamVideoGameEnv, register_game
from streamvideo.envs.game.themes import AVATARS, N_THEMES, theme

UP, DOWN, LEFT, RIGHT, PLANT = 1, 2, 3, 4, 5
CLEAR_GRASS_RED_KNIGHT = 0  # theme 0: no weather particles over the avatar, avatar colour unique on screen
FLOWER_PETAL = (255, 60, 170)


@pytest.fixture
def env():
    register_game()
    env = gym.make(GAME_ID)
    yield env
    env.close()


def interior_reset(env, theme_index=CLEAR_GRASS_RED_KNIGHT, margin=80):
    """Reset with the first seed whose avatar starts at least `margin` px from every world edge."""
    world = env.unwrapped.config.world_size
    for seed in range(100):
        frame, info = env.reset(seed=seed, options={"theme": theme_index})
        if all(margin <= v <= world - margin for v in info["avatar_xy"]):
            return frame, info
    raise AssertionError("no seed in range(100) starts the avatar away from the world edges")


def avatar_centroid(frame: np.ndarray) -> np.ndarray:
    ys, xs = np.nonzero(np.all(frame == AVATARS[0].colour, axis=-1))
    assert len(xs) > 10, "the red knight should be visible"
    return np.array([xs.mean(), ys.mean()])


def test_registration_is_idempotent_and_sets_episode_limit():
    register_game()
    register_game()
    assert gym.spec(GAME_ID).max_episode_steps == MAX_EPISODE_STEPS


def test_passes_gymnasium_env_checker():
    register_game()
    check_env(gym.make(GAME_ID).unwrapped, skip_render_check=False)


def test_frames_are_uint8_rgb_of_the_configured_size(env):
    frame, info = env.reset(seed=0)
    assert frame.shape == (64, 64, 3) and frame.dtype == np.uint8
    np.testing.assert_array_equal(env.render(), frame)
    big = gym.make(GAME_ID, size=128)
    frame, _ = big.reset(seed=0)
    assert frame.shape == (128, 128, 3)
    assert big.step(RIGHT)[0].shape == (128, 128, 3)


def test_same_seed_and_actions_replay_the_same_frames_and_state(env):
    other = gym.make(GAME_ID)
    actions = np.random.default_rng(0).integers(0, 6, 200)
    for e in (env, other):
        e.reset(seed=3)
    for a in actions:
        f1, _, _, _, i1 = env.step(int(a))
        f2, _, _, _, i2 = other.step(int(a))
        np.testing.assert_array_equal(f1, f2)
        assert i1["avatar_xy"] == i2["avatar_xy"] and i1["camera_xy"] == i2["camera_xy"]
        np.testing.assert_array_equal(i1["critters_xy"], i2["critters_xy"])
    different, _ = other.reset(seed=4)
    assert not np.array_equal(env.reset(seed=3)[0], different)


@pytest.mark.parametrize("action, direction", [(UP, (0, -1)), (DOWN, (0, 1)), (LEFT, (-1, 0)), (RIGHT, (1, 0))])
def test_each_move_displaces_the_avatar_by_speed_pixels_in_state_and_on_screen(action, direction):
    register_game()
    env = gym.make(GAME_ID, dead_zone=0.25)     # the avatar walks on screen inside the dead zone
    interior_reset(env)
    env.step(action)  # face the direction first: the eye sits on the facing side
    before = np.array(env.step(0)[4]["avatar_xy"]), avatar_centroid(env.render())
    frame, _, _, _, info = env.step(action)
    expected = env.unwrapped.speed * np.array(direction)
    assert env.unwrapped.speed == 8   # one tile: an 8x8-patch codec's token
    np.testing.assert_array_equal(np.array(info["avatar_xy"]) - before[0], expected)
    np.testing.assert_allclose(avatar_centroid(frame) - before[1], expected)


def test_noop_keeps_the_avatar_still(env):
    _, info = interior_reset(env)
    _, _, _, _, after = env.step(0)
    assert after["avatar_xy"] == info["avatar_xy"] and after["camera_xy"] == info["camera_xy"]


def test_the_default_camera_follows_the_avatar_one_tile_per_move(env):
    interior_reset(env)
    info = env.step(RIGHT)[4]                   # the first move brings the avatar to the camera's margin
    for _ in range(5):
        before, info = info, env.step(RIGHT)[4]
        assert info["camera_xy"][0] - before["camera_xy"][0] == 8 and 31 <= info["avatar_screen_xy"][0] <= 33


def test_camera_scrolls_once_the_avatar_reaches_the_dead_zone():
    register_game()
    env = gym.make(GAME_ID, dead_zone=0.25, speed=2)
    _, info = interior_reset(env)
    start_camera = info["camera_xy"]
    for _ in range(30):
        _, _, _, _, info = env.step(RIGHT)
        assert info["avatar_screen_xy"] == (info["avatar_xy"][0] - info["camera_xy"][0],
                                            info["avatar_xy"][1] - info["camera_xy"][1])
        assert 16 <= info["avatar_screen_xy"][0] <= 48
    assert info["camera_xy"][0] > start_camera[0] and info["camera_xy"][1] == start_camera[1]
    # the view is the world seen through the camera: the static background scrolled with it
    cx, cy = info["camera_xy"]
    world_view = env.unwrapped.world[cy:cy + 64, cx:cx + 64]
    assert np.mean(np.all(env.render() == world_view, axis=-1)) > 0.9


def test_world_edges_stop_the_avatar_and_the_camera(env):
    env.reset(seed=0)
    for _ in range(200):
        _, _, _, _, info = env.step(LEFT)
    assert info["avatar_xy"][0] == 4 and info["camera_xy"][0] == 0 and info["avatar_screen_xy"][0] == 4


def count_petals(frame):
    return int(np.all(frame == FLOWER_PETAL, axis=-1).sum())


def test_planted_flower_stays_in_the_world_after_scrolling_away(env):
    interior_reset(env)
    env.step(RIGHT)
    assert count_petals(env.render()) == 0
    frame, _, _, _, info = env.step(PLANT)
    assert info["flowers"] == 1 and count_petals(frame) > 0
    for _ in range(10):                         # 80 px: more than a screen
        frame, *_ = env.step(LEFT)
    assert count_petals(frame) == 0, "the flower scrolled off screen"
    for _ in range(10):
        frame, *_ = env.step(RIGHT)
    assert count_petals(frame) > 0, "walking back shows the flower where it was planted"


def test_critters_wander_on_their_own(env):
    _, info = env.reset(seed=0)
    start = info["critters_xy"]
    for _ in range(30):
        _, _, _, _, info = env.step(0)
    assert np.any(info["critters_xy"] != start)


def test_themes_have_distinct_prompts_and_are_drawn_from_the_seed(env):
    prompts = {theme(i).prompt for i in range(N_THEMES)}
    assert N_THEMES >= 8 and len(prompts) == N_THEMES
    seen = set()
    for seed in range(30):
        _, info = env.reset(seed=seed)
        assert info["prompt"] == env.unwrapped.prompt == theme(info["theme"]).prompt
        seen.add(info["theme"])
    assert len(seen) >= 8
    _, info = env.reset(seed=0, options={"theme": 42})
    assert info["theme"] == 42 and info["prompt"] == theme(42).prompt
    frames = [env.reset(seed=0, options={"theme": t})[0] for t in range(8)]
    assert len({f.tobytes() for f in frames}) == 8, "every theme looks different"


def test_prompt_names_avatar_ground_weather_and_palette():
    assert theme(2 + 4 * 2).prompt == ("a red knight walking on snowy ground among pine trees and "
                                        "wandering penguins under falling snow, warm palette")


def test_bad_inputs_raise_errors_naming_the_value(env):
    env.reset(seed=0)
    with pytest.raises(ValueError, match="Discrete"):
        env.unwrapped.step(6)
    with pytest.raises(ValueError, match=f"theme must be an int in \\[0, {N_THEMES}\\), got 999"):
        env.reset(options={"theme": 999})
    with pytest.raises(ValueError, match="unknown reset option"):
        env.reset(options={"level": 2})
    with pytest.raises(ValueError, match="multiple of 8"):
        StreamVideoGameEnv(size=30)
    with pytest.raises(TypeError, match="unknown game setting"):
        StreamVideoGameEnv(colour="red")


def test_runs_well_over_a_thousand_frames_per_second():
    env = StreamVideoGameEnv()
    env.reset(seed=0)
    actions = np.random.default_rng(0).integers(0, 6, 2000)
    start = time.perf_counter()
    for a in actions:
        env.step(int(a))
    assert 2000 / (time.perf_counter() - start) > 2000
