"""`emsync batch` on real Ray: embedded on this machine, and on a two-node cluster made here
with ray.cluster_utils.Cluster; the CLI runs in a subprocess as a user runs it.

Inputs are made here: short timelines (OTIO built in code) and a three-second video (PyAV),
so each item scores in about a second and the file stays well under two minutes.
"""
from __future__ import annotations

import io
import json
import signal
import subprocess
import sys
from pathlib import Path

import mido
import opentimelineio as otio
import pytest
from ray.cluster_utils import Cluster

from conftest import REPO, run_cli
from test_shots import edit_frames, write_video
from test_timelines import clip, save, video

from emsync.batch.inputs import Item, find_items, read_manifest
from emsync.batch.progress import Progress
from emsync.core.errors import EmsyncError


def make_timeline(folder: Path, name: str, frames=(48, 60, 72), relative_media: bool = False) -> Path:
    """A short OTIO timeline (8 s at 24 fps by default): a few clips joined by hard cuts."""
    clips = [clip(f"{name}{i}", count) for i, count in enumerate(frames)]
    if relative_media:
        for item in clips:
            item.media_reference.target_url = f"shots/{item.name}.mov"
    return save(folder, video(*clips), name=f"{name}.otio")


def make_library(folder: Path) -> Path:
    """Two timelines, a three-second video with one cut, and a corrupt "video"."""
    folder.mkdir()
    make_timeline(folder, "dawn")
    (folder / "nested").mkdir()
    make_timeline(folder / "nested", "dusk")
    frames, _, _ = edit_frames(width=160, height=96, lengths=(40, 35))
    write_video(folder / "street.mp4", frames)
    (folder / "broken.mp4").write_bytes(b"\x00\x00\x00\x18ftypmp42" + bytes(range(256)) * 20)
    return folder


def report_of(out: Path) -> dict:
    return json.loads((out / "report.json").read_text())


def statuses(report: dict) -> dict[str, str]:
    return {Path(item["input"]).name: item["status"] for item in report["items"]}


def midi_notes(path: Path) -> int:
    return sum(1 for track in mido.MidiFile(path).tracks for message in track if message.type == "note_on")


@pytest.fixture(scope="module")
def cluster():
    """Two Ray nodes of one CPU each on this machine: the head's HOST:PORT, which a `--address`
    run joins. (Not ray://: Ray 2.60's client proxy sometimes fails to fork its server here,
    "Starting Ray client server failed", about one start in four.)"""
    made = Cluster(initialize_head=True, head_node_args={"num_cpus": 1, "include_dashboard": False})
    made.add_node(num_cpus=1)
    made.wait_for_nodes()
    yield made.address
    made.shutdown()


def test_folder_scores_all_but_the_corrupt_file_and_a_second_run_skips_them(tmp_path):
    library = make_library(tmp_path / "library")
    out = library / "scores"  # inside the searched folder: its outputs must never be read as inputs
    first = run_cli("batch", library, "--out", out, "--workers", "2")
    assert first.returncode == 1, first.stderr
    report = report_of(out)
    assert statuses(report) == {"dawn.otio": "done", "dusk.otio": "done", "street.mp4": "done",
                                "broken.mp4": "failed"}
    failed = next(item for item in report["items"] if item["status"] == "failed")
    assert str(library / "broken.mp4") in failed["error"] and "\n" not in failed["error"]
    assert "Traceback" not in first.stderr + first.stdout
    assert report["engine"] == "ray" and report["ray"]["version"] == "2.60.0"
    assert report["ray"]["address"].startswith("embedded") and report["ray"]["workers"] == 2
    assert report["summary"]["done"] == 3 and report["summary"]["failed"] == 1 and report["finished"]
    for name in ("dawn", "dusk", "street"):
        assert midi_notes(out / f"{name}.mid") > 10
    assert 0 < report["ray"]["peak_worker_rss_mb"] < report["ray"]["memory_per_worker_mb"]
    assert "memory per worker 1024 MB reserved" in first.stdout
    written = {name: (out / f"{name}.mid").stat().st_mtime_ns for name in ("dawn", "dusk", "street")}

    second = run_cli("batch", library, "--out", out, "--workers", "2")
    assert second.returncode == 1  # the corrupt file is retried, and fails again
    assert statuses(report_of(out)) == {"dawn.otio": "skipped", "dusk.otio": "skipped", "street.mp4": "skipped",
                                        "broken.mp4": "failed"}
    assert {name: (out / f"{name}.mid").stat().st_mtime_ns for name in written} == written
    assert sorted(p.name for p in out.iterdir()) == ["dawn.mid", "dusk.mid", "report.json", "street.mid"]


@pytest.mark.parametrize("stop", [signal.SIGINT, signal.SIGKILL], ids=["ctrl-c", "kill"])
def test_interrupted_run_keeps_its_report_and_the_next_run_does_only_the_rest(tmp_path, cluster, stop):
    inputs = tmp_path / "cues"
    inputs.mkdir()
    for number in range(5):
        make_timeline(inputs, f"cue{number}")
    out = tmp_path / "out"
    command = [sys.executable, "-m", "emsync.cli", "batch", str(inputs), "--out", str(out),
               "--address", cluster, "--workers", "1"]
    run = subprocess.Popen(command, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    for line in run.stdout:
        if line.startswith("[1/5] done"):
            run.send_signal(stop)
            break
    rest, errors = run.communicate(timeout=120)
    report = report_of(out)
    if stop == signal.SIGINT:  # Ctrl-C: the tasks in flight are cancelled and the report says so
        assert run.returncode == 130, errors
        assert "emsync: interrupted" in errors and "Traceback" not in errors
        assert report["cancelled"] and report["finished"]
    else:  # killed outright: the report as of the last finished item
        assert run.returncode == -signal.SIGKILL and not report["finished"]
    done = {name for name, status in statuses(report).items() if status == "done"}
    assert 1 <= len(done) < 5 and set(statuses(report).values()) <= {"done", "pending"}
    stamps = {name: (out / name.replace(".otio", ".mid")).stat().st_mtime_ns for name in done}

    again = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=300)
    assert again.returncode == 0, again.stderr
    final = statuses(report_of(out))
    assert {name for name, status in final.items() if status == "skipped"} == done
    assert {name for name, status in final.items() if status == "done"} == {f"cue{n}.otio" for n in range(5)} - done
    assert {name: (out / name.replace(".otio", ".mid")).stat().st_mtime_ns for name in done} == stamps


def test_two_node_cluster_runs_items_on_both_nodes_and_ships_files_both_ways(tmp_path, cluster):
    inputs = tmp_path / "reels"
    inputs.mkdir()
    (inputs / "sub").mkdir()
    for name in ("a", "b", "c"):
        make_timeline(inputs, name)
    make_timeline(inputs / "sub", "a", relative_media=True)  # a second "a": named a-2
    manifest = tmp_path / "jobs.csv"
    manifest.write_text("input,emotion,seed,outputs\n"
                        "reels/a.otio,tense,3,\n"
                        "reels/b.otio,,5,png\n"
                        "reels/c.otio,calm,,\n"
                        "reels/sub/a.otio,joy,1,wav otio\n")
    out = tmp_path / "out"
    done = run_cli("batch", manifest, "--out", out, "--address", cluster, "--workers", "2")
    assert done.returncode == 0, done.stderr
    report = report_of(out)
    assert report["ray"]["nodes"] == 2 and report["ray"]["transfer"] == "ship"
    assert report["ray"]["address"] == cluster
    items = report["items"]
    assert [item["status"] for item in items] == ["done"] * 4
    assert len({item["node"] for item in items}) == 2  # both nodes scored items
    workers = {item["worker"] for item in items}
    assert sum(item["model_loaded"] for item in items) == len(workers) < len(items)  # once per worker process
    assert sorted(p.name for p in out.iterdir()) == ["a-2.mid", "a-2.otio", "a-2.wav", "a.mid", "b.mid", "b.png",
                                                     "c.mid", "report.json"]
    edit = otio.adapters.read_from_file(str(out / "a-2.otio"))
    urls = {ref.target_url for ref in (c.media_reference for c in edit.find_clips()) if hasattr(ref, "target_url")}
    assert (inputs / "sub" / "shots" / "a0.mov").as_uri() in urls  # media found from the user's timeline
    assert (out / "a-2.wav").as_uri() in urls  # the music where the driver wrote it, not a worker's scratch
    assert all("emsync-batch-" not in url for url in urls)


def test_manifest_rows_become_items_and_a_bad_row_names_its_line(tmp_path):
    (tmp_path / "x.otio").write_text("{}")
    good = tmp_path / "jobs.jsonl"
    good.write_text('{"input": "x.otio", "valence": 0.5, "outputs": ["wav", "fcpxml"]}\n\n'
                    '{"input": "x.otio", "emotion": "sad", "seed": 9}\n')
    items = find_items([str(good)], Item("", seed=2, plot=True), tmp_path / "out")
    assert [(i.name, i.valence, i.emotion, i.seed, i.audio, i.plot, i.timeline) for i in items] == [
        ("x", 0.5, None, 2, True, False, ".fcpxml"), ("x-2", None, "sad", 9, False, True, None)]
    for row, complaint in (('{"input": "x.otio", "emotion": "grumpy"}', "unknown emotion word 'grumpy'"),
                           ('{"input": "x.otio", "outputs": ["mp3"]}', "unknown output 'mp3'"),
                           ('{"input": "x.otio", "valence": 3}', "valence: 3.0 is outside -1..1"),
                           ('["x.otio"]', "expected an object")):
        bad = tmp_path / "bad.jsonl"
        bad.write_text('{"input": "x.otio"}\n' + row + "\n")
        with pytest.raises(EmsyncError, match=f"bad.jsonl: line 2: .*{complaint}"):
            read_manifest(bad, Item(""))
    refused = run_cli("batch", tmp_path / "x.otio", "--out", tmp_path, "--otio-format", "otio")
    assert refused.returncode == 2 and "would replace the input" in refused.stderr
    nobody = run_cli("batch", tmp_path / "x.otio", "--out", tmp_path / "out", "--address", "127.0.0.1:1")
    assert nobody.returncode == 2 and nobody.stderr.strip().splitlines() == [
        "emsync: error: --address 127.0.0.1:1: no Ray cluster answers there (Connection refused)"]


def test_progress_draws_a_bar_on_a_terminal():
    class Terminal(io.StringIO):
        def isatty(self):
            return True

    screen = Terminal()
    progress = Progress(total=3, to_run=2, stream=screen)
    progress.item({"status": "done", "input": "a.mp4", "seconds": 1.0})
    progress.item({"status": "failed", "input": "b.mp4", "seconds": 1.0, "error": "b.mp4: not a video"})
    progress.close()
    text = screen.getvalue()
    assert "[############............] 1/2  done 1  failed 0  ETA" in text
    assert "\x1b[Kb.mp4: not a video\n" in text  # a failure stays on screen above the bar
    assert "2/2  done 1  failed 1  ETA 0:00" in text
