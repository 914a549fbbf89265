"""The engine: everything that turns a prompt and actions into frames, and nothing else.

The causal DiT (`model`, `rope`, `kv_cache`), the flow-matching math and step schedules (`flow`,
`schedules`), the chunk rollouts and the generator built on them (`rollout`, `generator`, `group_step`),
the action spaces (`actions`), the codecs and text encoders the generator decodes and conditions through
(`codecs/`, `text`), what loading a model needs (`presets`, `checkpoints`) and the CPU threads it runs on
(`threads`).

It imports nothing from the rest of the package (training, evaluation, the apps, the envs, the bridge):
`tests/test_architecture.py` checks it, `docs/architecture.md` gives the rule. Users start from the
package's own names, `streamvideo.load` and `streamvideo.StreamGenerator`.
"""
