"""The command line as a new user meets it (issue 19): bad output paths fail before any work,
progress shows on a terminal, help gives every option's range and default, a result can be
repeated, and the README's first command writes where git does not look."""
from __future__ import annotations

import argparse
import io
import os
import pty
import re
import resource
import subprocess
import sys
import time

import pytest

from conftest import REPO, run_cli
from emsync.cli import build_parser
from emsync.cli_options import HelpWithDefaults, Progress, setting_range
from emsync.core.limits import MAX_SCORE_SECONDS

HARBOUR = REPO / "examples" / "harbour.otio"
VIDEO = REPO / "examples" / "five_scenes.mp4"


@pytest.mark.parametrize("args, names", [
    (["score", VIDEO, "-o", "{tmp}/v.mid", "--audio", "--otio", "{tmp}/nodir/v.otio"], "--otio {tmp}/nodir/v.otio"),
    (["score", HARBOUR, "-o", "{tmp}/x.mid", "--otio", "{tmp}/x.mov"], "--otio {tmp}/x.mov"),
    (["score", HARBOUR, "-o", "{tmp}/x.mid", "--plot", "--otio", "{tmp}/x.otio"], "--plot {tmp}/x.png"),
    (["score", HARBOUR, "-o", "{tmp}/w.mid", "--otio", "{tmp}/w.otio"], "--audio {tmp}/w.wav"),  # the edit plays it
    (["score", HARBOUR, "-o", "{tmp}/x.mid", "--otio", HARBOUR], f"--otio {HARBOUR}"),
    (["generate", "--duration", 5, "-o", "{tmp}"], "-o {tmp}"),
    (["generate", "--duration", 5, "-o", "{tmp}/x.wav"], "-o {tmp}/x.wav"),
    (["generate", "--duration", 5, "-o", "{tmp}/w.mid", "--audio"], "--audio {tmp}/w.wav"),
    (["render", HARBOUR, "-o", "{tmp}/nodir/x.wav"], "-o {tmp}/nodir/x.wav"),
    (["render", HARBOUR, "-o", "{tmp}/y.wav", "--stems", "{tmp}/a-file"], "--stems {tmp}/a-file"),
    (["plot", HARBOUR, "-o", "{tmp}/x.jpg"], "-o {tmp}/x.jpg"),
    (["export", "--checkpoint", "c.pt", "-o", "{tmp}/a-file/m.onnx"], "-o {tmp}/a-file/m.onnx"),
    (["eval", "--json-out", "{tmp}/nodir/r.json"], "--json-out {tmp}/nodir/r.json"),
    (["train", "--data", "d", "--out", "{tmp}/a-file/run"], "--out {tmp}/a-file/run"),
    (["batch", HARBOUR, "--out", "{tmp}/a-file"], "--out {tmp}/a-file"),
])
def test_a_bad_output_path_fails_at_once_naming_it_and_writes_nothing(tmp_path, args, names):
    (tmp_path / "a-file").write_text("not a folder")
    (tmp_path / "x.png").mkdir()  # where --plot would write
    (tmp_path / "w.wav").mkdir()  # where --audio (or the edit's music track) would write
    before = sorted(tmp_path.rglob("*"))
    began = resource.getrusage(resource.RUSAGE_CHILDREN)
    result = run_cli(*[str(a).replace("{tmp}", str(tmp_path)) for a in args])
    ended = resource.getrusage(resource.RUSAGE_CHILDREN)
    took = ended.ru_utime + ended.ru_stime - began.ru_utime - began.ru_stime  # CPU time: the shared machine's load aside
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and names.replace("{tmp}", str(tmp_path)) + ":" in lines[0], result.stderr
    assert took < 1.0, f"{took:.2f} s"
    assert sorted(tmp_path.rglob("*")) == before


def _pty_run(*args, cwd):
    """Run the CLI with stderr on a pseudo-terminal (as in a shell) and stdout on a pipe."""
    leader, follower = pty.openpty()
    process = subprocess.Popen([sys.executable, "-m", "emsync.cli", *map(str, args)], cwd=cwd,
                               stdout=subprocess.PIPE, stderr=follower, text=True)
    os.close(follower)
    terminal = b""
    while True:
        try:
            chunk = os.read(leader, 4096)
        except OSError:  # the pseudo-terminal closes when the process ends
            break
        if not chunk:
            break
        terminal += chunk
    stdout = process.communicate(timeout=120)[0]
    os.close(leader)
    return process.returncode, stdout, terminal.decode()


def test_progress_on_a_terminal_results_on_stdout_and_a_repeatable_seed(tmp_path):
    status, stdout, terminal = _pty_run("generate", "--duration", 8, "-o", tmp_path / "a.mid", "--plot", cwd=tmp_path)
    assert status == 0, terminal
    assert re.search(r"\r\x1b\[Kgenerating 8 s of music( +\d+%)?\s+\d+ s", terminal), terminal  # drawn in place
    assert "emsync:" not in stdout and "\r" not in stdout  # stdout: results only
    seed = re.search(r"^seed (\d+) \(chosen at random: --seed \1 makes this music again\)$", stdout, re.M)
    assert seed, stdout
    (tmp_path / "again").mkdir()  # the same file name: the title track names it
    again = run_cli("generate", "--duration", 8, "-o", tmp_path / "again" / "a.mid", "--seed", seed[1])
    assert again.returncode == 0 and "chosen at random" not in again.stdout
    assert (tmp_path / "a.mid").read_bytes() == (tmp_path / "again" / "a.mid").read_bytes()


class _Screen(io.StringIO):
    def isatty(self):
        return True


def test_a_stage_on_a_terminal_shows_at_once_and_redraws_its_percentage():
    screen = _Screen()
    with Progress(screen).stage("generating 8 s of music") as fraction:
        assert _wait_for(lambda: re.search(r"\r\x1b\[Kgenerating 8 s of music  \d+ s", screen.getvalue()))
        fraction(0.5)
        assert _wait_for(lambda: re.search(r"\r\x1b\[Kgenerating 8 s of music 50%  \d+ s", screen.getvalue()))
    assert screen.getvalue().endswith("\r\x1b[K")  # results print on a clean line


def _wait_for(condition, seconds=5.0):
    ends = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > ends:
            return False
        time.sleep(0.01)
    return True


def _options():
    parser = build_parser()
    stack = [("emsync", parser)]
    while stack:
        name, current = stack.pop()
        for action in current._actions:
            if isinstance(action, argparse._SubParsersAction):
                stack += [(f"{name} {sub}", p) for sub, p in action.choices.items()]
            elif action.option_strings and action.dest != "help":
                yield name, action


def test_every_option_of_every_command_gives_its_default_or_range():
    missing = []
    for command, action in _options():
        text = HelpWithDefaults(command)._expand_help(action)  # what --help prints for it
        if not re.search(r"default|required|\d\.\.-?\d", text) or "default: None" in text:
            missing.append(f"{command} {action.option_strings[-1]}: {text!r}")
        numeric = action.type in (int, float) or hasattr(action.type, "range")
        if numeric and not re.search(r"\d\.\.-?\d|\d or more", text):  # a number's help gives its range too
            missing.append(f"{command} {action.option_strings[-1]} (no range): {text!r}")
    assert not missing, missing
    shown = " ".join(run_cli("generate", "--help").stdout.split())
    for name in ("temperature", "top_p", "seed", "emotion_guidance", "bpm"):  # the session's own ranges
        assert setting_range(name) in shown, name
    assert f"0..{MAX_SCORE_SECONDS:g}" in shown and "without it the music changes each run" in shown.lower()


def test_an_unknown_emotion_word_lists_the_known_ones(tmp_path):
    result = run_cli("score", HARBOUR, "-o", tmp_path / "x.mid", "--emotion", "bogus")
    assert result.returncode == 2 and len(result.stderr.strip().splitlines()) == 1
    assert "--emotion: unknown emotion word 'bogus'; known: " in result.stderr
    assert all(word in result.stderr for word in ("joy", "calm", "tense", "epic"))


def test_the_readme_says_what_emsync_is_and_its_first_command_writes_where_git_ignores():
    text = (REPO / "README.md").read_text()
    before, block = text.split("```bash\n", 1)
    sentence = before.split("\n", 1)[1].strip()
    assert sentence.startswith("emsync ") and sentence.endswith(".") and "\n\n" not in sentence
    first, second = block.split("\n")[:2]
    assert first.startswith("python3 -m venv .venv") and second.startswith("python3 -m venv .venv")
    outputs = re.findall(r"(?:-o|--otio) (\S+)", first)
    assert outputs and all(o.startswith("out/") for o in outputs), first
    assert "mkdir -p out" in first  # emsync makes no folders for files
    for written in ("out/five_scenes.mid", "out/five_scenes.wav", "out/five_scenes.png", "out/five_scenes.otio"):
        ignored = subprocess.run(["git", "check-ignore", "-q", written], cwd=REPO)
        assert ignored.returncode == 0, f"{written} is not covered by .gitignore"
