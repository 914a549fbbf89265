"""streamvideo play: the key map, the HUD's text, and the real pygame loop (SDL dummy driver) writing a
playable mp4."""

import time

import imageio.v2 as imageio
import pygame
import pytest

import streamvideo
from streamvideo.apps.cli import main
from streamvideo.apps.keymap import KeyMap
from streamvideo.apps.play import (
    ELLIPSIS,
    SCRIPTED_PROMPT,
    PlaySession,
    demo_script,
    key_event,
    typed_prompt_events,
    wrap_text,
)
from streamvideo.engine.actions import ActionSpec
from streamvideo.engine.presets import GAME_ACTIONS
from streamvideo.envs.stream_env import StreamVideoEnv

MODEL = "tiny-random"


# ------------------------------------------------------------------------------------ key map

@pytest.mark.parametrize("spec", [ActionSpec("discrete", n=12), ActionSpec("multi_discrete", sizes=(3, 3, 2, 2)),
                                  ActionSpec("continuous", dim=4)])
def test_every_binding_gives_a_valid_action_that_is_not_the_noop(spec):
    keymap = KeyMap(spec)
    assert keymap.bindings and not keymap.unbound
    for binding in keymap.bindings:
        for key in binding.keys:
            action = spec.validate(keymap.action([key]))
            assert repr(action) != repr(spec.noop()), (binding, key)


def test_discrete_keys_follow_the_game_actions():
    keymap = KeyMap(GAME_ACTIONS)   # NOOP, UP, DOWN, LEFT, RIGHT, PLANT
    keys = [pygame.K_UP, pygame.K_DOWN, pygame.K_LEFT, pygame.K_RIGHT, pygame.K_SPACE]
    assert [keymap.action([k]) for k in keys] == [1, 2, 3, 4, 5]
    assert [keymap.action([k]) for k in (pygame.K_w, pygame.K_s, pygame.K_a, pygame.K_d)] == [1, 2, 3, 4]
    assert keymap.action([]) == 0 and keymap.action([pygame.K_z]) == 0
    assert keymap.action([pygame.K_LEFT, pygame.K_UP]) == 1  # the newest press wins
    assert keymap.help_lines()[3] == "   Left/A  LEFT: action 3"


def test_axes_buttons_and_unbound_entries():
    multi = KeyMap(ActionSpec("multi_discrete", sizes=(3, 3, 2, 5)))
    assert multi.action([pygame.K_LEFT, pygame.K_SPACE]).tolist() == [1, 0, 1, 0]
    assert multi.action([pygame.K_LEFT, pygame.K_d, pygame.K_s]).tolist() == [0, 2, 0, 0]  # opposites cancel
    assert multi.unbound == ["key set 3 (size 5)"] and multi.help_lines()[-1].endswith("key set 3 (size 5)")
    box = KeyMap(ActionSpec("continuous", dim=3))
    assert box.action([pygame.K_RIGHT, pygame.K_UP, pygame.K_SPACE]).tolist() == [1.0, 1.0, 1.0]
    assert box.action([pygame.K_a, pygame.K_s]).tolist() == [-1.0, -1.0, 0.0]
    assert KeyMap(ActionSpec("none")).bindings == []


# ------------------------------------------------------------------------------------ the play loop

def test_play_loop_with_posted_keys_prompt_change_reset_screenshot_and_recording(tmp_path):
    generator = streamvideo.load(MODEL, device="cpu")
    session = PlaySession(generator, MODEL, prompt="a grassy meadow", seed=0, scale=2,
                          record=str(tmp_path / "play.mp4"), paced=False, screenshot_dir=tmp_path)
    frames = 300
    script = demo_script(session.keymap, frames, prompt="sandy desert")  # keys in turn, a prompt at 150
    script[61] = [key_event(pygame.KEYDOWN, pygame.K_F12)]
    script[91] = [key_event(pygame.KEYDOWN, pygame.K_r)]
    summary = session.run(max_frames=frames, script=script)

    assert summary.frames_shown == frames
    video = imageio.mimread(tmp_path / "play.mp4", memtest=False)
    assert len(video) == frames and video[0].shape == (128, 128, 3)
    assert {1, 2, 3, 4, 5} <= {chunk.action for chunk in summary.chunks}  # every scripted key reached the model

    prompts = [chunk.prompt for chunk in summary.chunks]
    first_new = prompts.index("sandy desert")
    assert set(prompts[:first_new]) == {"a grassy meadow"} and set(prompts[first_new:]) == {"sandy desert"}
    frames_before_change = sum(len(chunk.frames) for chunk in summary.chunks[:first_new])
    assert 150 <= frames_before_change <= 150 + 2 * generator.frames_per_chunk  # at most one chunk ahead
    assert summary.prompt_changes == [(150, "sandy desert")]

    assert [chunk.index for chunk in summary.chunks].count(0) == 2  # the stream restarted once
    assert len(list(tmp_path.glob("streamvideo-*.png"))) == 1


def test_pause_help_and_typing_keys():
    session = PlaySession(streamvideo.load(MODEL, device="cpu"), MODEL, paced=False)
    help_shown = session.help_until > 0
    events = [key_event(pygame.KEYDOWN, pygame.K_p), key_event(pygame.KEYDOWN, pygame.K_h),
              *typed_prompt_events("abc")[:2], key_event(pygame.KEYDOWN, pygame.K_BACKSPACE)]
    for event in events:
        pygame.event.post(event)
    session.handle_events()
    assert session.paused and session.typing == "ab" and session.help_until == 0.0 and help_shown
    session.draw()  # HUD, typing line and PAUSED render without error
    assert session.hud_lines() == ["generating the first chunk...  PAUSED"]
    assert session.typing_lines()[0] == "new prompt: ab_"  # short text is shown whole
    pygame.event.post(key_event(pygame.KEYDOWN, pygame.K_ESCAPE))  # Esc while typing cancels the prompt
    session.handle_events()
    assert session.typing is None and session.running
    pygame.event.post(key_event(pygame.KEYDOWN, pygame.K_ESCAPE))  # Esc again quits
    session.handle_events()
    assert not session.running
    pygame.display.quit()


# ------------------------------------------------------------------------------------ the HUD's text

def fits_in_window(session: PlaySession, line: str) -> bool:
    return session.font.size(line)[0] <= session.screen.get_width() - 12  # 6 px margins


def test_a_long_typed_prompt_keeps_its_end_and_the_cursor_in_the_window():
    session = PlaySession(streamvideo.load(MODEL, device="cpu"), MODEL, paced=False)  # 512 px wide
    typed = " ".join(f"word{i}" for i in range(60))[:300]
    pygame.event.post(key_event(pygame.KEYDOWN, pygame.K_RETURN))
    pygame.event.post(pygame.event.Event(pygame.TEXTINPUT, text=typed))
    session.handle_events()
    line = session.typing_lines()[0]
    assert len(typed) == 300 and fits_in_window(session, line)
    assert line.startswith(ELLIPSIS) and line.endswith(typed[-30:] + "_")  # the end being typed, cursor last
    session.draw()
    pygame.display.quit()


def test_the_prompt_line_wraps_to_two_lines_then_ellipsizes():
    session = PlaySession(streamvideo.load(MODEL, device="cpu"), MODEL, paced=False)
    width = session.screen.get_width() - 12
    whole = "prompt: " + SCRIPTED_PROMPT  # 114 characters: too long for one line, fits in two
    lines = wrap_text(session.font, whole, width, max_lines=2)
    assert len(lines) == 2 and " ".join(lines) == whole and all(fits_in_window(session, x) for x in lines)
    cut = wrap_text(session.font, whole * 3, width, max_lines=2)
    assert len(cut) == 2 and cut[1].endswith(ELLIPSIS) and all(fits_in_window(session, x) for x in cut)
    assert cut[0] == lines[0]
    pygame.display.quit()


def test_fps_reads_paused_while_paused_and_restarts_at_resume():
    session = PlaySession(streamvideo.load(MODEL, device="cpu"), MODEL, paced=False)
    session.worker.start()
    try:
        while len(session.pending) < 2 or session.shown < 4:  # frames to show after the pause are ready
            session.advance()
        assert session.hud_lines()[0].split("   ")[0].endswith(" FPS")
        pygame.event.post(key_event(pygame.KEYDOWN, pygame.K_p))
        session.handle_events()
        assert session.hud_lines()[0].startswith("paused   chunk #")
        time.sleep(1.0)
        pygame.event.post(key_event(pygame.KEYDOWN, pygame.K_p))
        session.handle_events()
        assert session.hud_lines()[0].startswith("-- FPS   chunk #")  # no frame shown since the resume yet
        session.advance()
        session.advance()
        fps = float(session.hud_lines()[0].split(" FPS")[0])
        assert fps > 10  # two frames shown back to back; counting the 1 s pause would give < 5 FPS
    finally:
        session.worker.stop()
        pygame.display.quit()


@pytest.mark.parametrize("model", ["default", MODEL])  # with real start frames, and without
def test_hud_chunk_numbers_are_the_envs_info_chunk(model):
    env = StreamVideoEnv(model=model, device="cpu")
    env_chunks = [env.reset(seed=0)[1]["chunk"]] + [env.step(env.action_space.sample())[-1]["chunk"]
                                                    for _ in range(2)]
    assert env_chunks == ([1, 2, 3] if model == "default" else [0, 1, 2])
    generator = env.unwrapped.generator
    session = PlaySession(generator, model, paced=False)
    session.worker.start()
    hud = []
    try:
        for _ in range(3):  # the first frame of each chunk
            session.advance()
            hud.append(int(session.hud_lines()[0].split("chunk #")[1].split()[0]))
            session.pending.clear()
    finally:
        session.worker.stop()
        pygame.display.quit()
    assert hud == env_chunks


def test_headless_cli_prints_a_short_summary_and_writes_the_video(tmp_path, capsys):
    out = tmp_path / "out.mp4"
    args = ["play", "--headless", "--frames", "60", "--model", MODEL, "--device", "cpu", "--scale", "1",
            "--prompt", "a grassy meadow", "--record", str(out)]
    assert main(args) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == 4 and lines[0].startswith(f"played {MODEL} (64x64, diagonal, cpu): 60 frames in ")
    assert lines[2] == f"  prompt      'a grassy meadow', then {SCRIPTED_PROMPT!r} (typed at frame 30)"
    assert lines[3] == f"  video       {out} (60 frames)"
    video = imageio.mimread(out, memtest=False)
    assert len(video) == 60 and video[0].shape == (64, 64, 3)


def test_missing_default_model_falls_back_to_tiny_random(monkeypatch, capsys):
    monkeypatch.setattr("streamvideo.engine.presets.preset_names", lambda: [MODEL])  # play looks it up there
    assert main(["play", "--headless", "--frames", "6", "--device", "cpu"]) == 0
    out = capsys.readouterr().out
    assert out.startswith(f'model "default" is not installed; playing "{MODEL}" (random weights) instead\n')
    assert f"played {MODEL} (64x64, diagonal, cpu): 6 frames" in out
