"""`streamvideo eval`: world models against the real env they were trained on (docs/evaluation.md).

`evaluate` is the command; `agnostic` measures any Gymnasium env (fidelity, action following, drift,
speed), `game` and `detectors` add the built-in game's own measures, `report` draws the figures and the
table. It uses the engine to run models and the data package to replay real envs as they were recorded.
"""
