"""The built-in ground-truth game, `StreamVideoGame-v0`: the env (`env`), its drawing (`draw`), themes
(`themes`) and weather (`weather`).

A plain Gymnasium env in pure numpy: it imports nothing from the engine, so the data package and the
evaluation can record and replay it without a world model (the rule in docs/architecture.md).
"""
