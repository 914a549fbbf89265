"""RemoteEnv: `StreamVideo-v0` over the bridge. Same spaces, info keys, seeding and reset semantics as the
in-process env, because it *is* that env with its generator replaced by a server session.

    env = RemoteEnv("tcp://127.0.0.1:5555", model="tiny-random", prompt="a grassy meadow")
    obs, info = env.reset(seed=0)                      # the chunk's last frame; info["frames"]: the whole chunk
    obs, reward, terminated, truncated, info = env.step(env.action_space.sample())

`observation=` ("frame", "stacked" or "chunk") works as in StreamVideoEnv, on the chunks the server sends.
"""

from __future__ import annotations

from streamvideo.engine.actions import ActionSpec
from streamvideo.engine.generator import StreamGenerator
from streamvideo.envs.stream_env import StreamVideoEnv

from .client import Client, RemoteChunk, Session
from .protocol import BridgeError


class RemoteGenerator(StreamGenerator):
    """The StreamGenerator interface served by a bridge session in lock-step mode.

    It subclasses StreamGenerator only so StreamVideoEnv accepts it; no model lives in this process
    (StreamGenerator.__init__ is never run, every method the env uses is overridden).
    """

    batch_size = 1
    start_frames = None   # the model's files live with the server: remote streams start from text or given frames

    def __init__(self, session: Session):  # StreamGenerator.__init__ deliberately not called
        self.session = session
        self._action_spec = ActionSpec.from_dict(session.info["action_space"])
        self.frames_per_chunk, self.height, self.width = session.frames_per_chunk, session.height, session.width
        self.fps = session.fps

    @property
    def action_spec(self) -> ActionSpec:
        return self._action_spec

    @property
    def stats(self) -> dict:
        return self.session.stats()

    def reset(self, prompt: str | None = None, seed: int | None = None, context_frames=None) -> None:
        self.session.reset(prompt=prompt, seed=seed, context_frames=context_frames)

    def step(self, action=None) -> RemoteChunk:
        return self.session.step(action)

    def set_prompt(self, prompt: str, recache: bool = False) -> None:
        self.session.set_prompt(prompt, recache=recache)


class RemoteEnv(StreamVideoEnv):
    """A Gymnasium env whose world model runs in a `streamvideo serve` process.

    client: options for Client (timeout, retries, server_key, client_key for CURVE);
    env_options: the other StreamVideoEnv options (observation, render_mode, reward_fn, ...); `threads` only
    sets this process's torch threads, the model runs in the server.
    """

    def __init__(self, address: str = "tcp://127.0.0.1:5555", model: str | None = None, prompt: str = "",
                 mode: str | None = None, schedule: str | None = None, encoding: str = "raw",
                 quality: int | None = None, client: dict | None = None, **env_options):
        self.client = Client(address, **(client or {}))
        try:
            session = self.client.open(model=model, prompt=prompt, mode=mode, schedule=schedule,
                                       encoding=encoding, quality=quality)
            super().__init__(model=RemoteGenerator(session), prompt=prompt, **env_options)
        except BaseException:
            self.client.close()
            raise

    def close(self):
        super().close()
        if not self.client._sock.closed:
            try:
                self.generator.session.close()
            except BridgeError:
                pass  # server gone or session already reclaimed: nothing left to free
            finally:
                self.client.close()
