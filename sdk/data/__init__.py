"""Recorded data sets: `streamvideo collect` records frames, actions and prompts from any Gymnasium env
that renders rgb_array, and reads them back (`collect.load_dataset`, `collect.iter_clips`).

Training learns from these data sets and evaluation replays real envs exactly as they were recorded
(`collect.make_env`, `collect.read_frame`), so both stand on this package; it needs no model, only
Gymnasium (and the built-in game, `streamvideo.envs.game`, which it registers on demand).
"""
