"""The `emsync` command line, run as a user would."""
import json

import mido
import pytest

from conftest import REPO, SHARED_DATA, run_cli
from emsync.core.music import GM_PROGRAM, INSTRUMENTS


def _check_smf(path, expected_markers):
    midi = mido.MidiFile(path)
    assert midi.type == 1
    names = [next((m.name for m in t if m.type == "track_name"), None) for t in midi.tracks]
    assert names[1:] == [i.capitalize() for i in INSTRUMENTS]
    for track, name in zip(midi.tracks[1:], INSTRUMENTS):
        programs = [m.program for m in track if m.type == "program_change"]
        assert programs == [GM_PROGRAM[name]]
    assert any(m.type == "set_tempo" for m in midi.tracks[0])
    markers = [m for m in midi.tracks[0] if m.type == "marker"]
    assert len(markers) == len(expected_markers)
    times, now = [], 0.0
    for message in midi:  # mido's own playback clock follows the tempo map
        now += message.time
        if message.type == "marker":
            times.append(now)
    assert times == pytest.approx(expected_markers, abs=0.002)
    assert sum(m.type == "note_on" for t in midi.tracks for m in t) > 0

    from symusic import Score  # an independent (C++) parser

    score = Score(str(path))
    assert len(score.markers) == len(expected_markers)
    assert {t.name for t in score.tracks} <= {i.capitalize() for i in INSTRUMENTS}
    assert sum(len(t.notes) for t in score.tracks) > 0
    drums = [t for t in score.tracks if t.is_drum]
    assert all(t.name == "Drums" for t in drums)


def test_generate_from_cut_list(tmp_path):
    out = tmp_path / "out.mid"
    result = run_cli("generate", "--duration", 12, "--cuts", "3,6.5,9", "--valence", 0.6, "--arousal", 0.4,
                     "--seed", 1, "-o", out)
    assert result.returncode == 0, result.stderr
    _check_smf(out, [3.0, 6.5, 9.0])


@pytest.mark.parametrize("options", [[], ["--lock-mode"]])
def test_generate_from_scene_file(tmp_path, options):
    out = tmp_path / "scenes.mid"
    result = run_cli("generate", "--scenes", REPO / "examples" / "scenes.json", "--seed", 2, *options, "-o", out)
    assert result.returncode == 0, result.stderr
    scenes = json.loads((REPO / "examples" / "scenes.json").read_text())["scenes"]
    _check_smf(out, [s["start"] for s in scenes[1:]])


@pytest.mark.parametrize("args, says", [
    (["generate", "--duration", 10, "--cuts", "3,x", "-o", "{tmp}/a.mid"], "--cuts"),
    (["generate", "--duration", 10, "--cuts", "12", "-o", "{tmp}/a.mid"], "cuts"),
    (["generate", "--duration", 10, "--valence", 3, "-o", "{tmp}/a.mid"], "valence"),
    (["generate", "--scenes", "{tmp}/missing.json", "-o", "{tmp}/a.mid"], "missing.json"),
    (["generate", "--scenes", "{tmp}/bad.json", "-o", "{tmp}/a.mid"], "bad.json"),
    (["generate", "--duration", 5, "-o", "{tmp}/no/such/dir/a.mid"], "does not exist"),
    (["generate", "--duration", 5, "--model", "{tmp}/bad.json", "-o", "{tmp}/a.mid"], "bad.json"),
])
def test_bad_input_gets_one_line(tmp_path, args, says):
    (tmp_path / "bad.json").write_text("{not json")
    result = run_cli(*[str(a).replace("{tmp}", str(tmp_path)) for a in args])
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and says in lines[0], result.stderr
    assert not (tmp_path / "a.mid").exists()


TIMELINES = [SHARED_DATA / "timelines" / name for name in (  # the real editor exports in ../shared (its README)
    "premiere_example.xml", "fcpx_example.fcpxml", "simple.aaf", "transitions.aaf", "premiere_example.edl",
    "avid_example.edl", "dissolve_test.edl", "gap_test.edl", "25fps.edl")]


@pytest.mark.shared_data
@pytest.mark.parametrize("path", TIMELINES, ids=lambda p: p.name)
def test_cuts_json_for_every_editor_export(path):
    result = run_cli("cuts", path, "--json")
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    times = [c["time"] for c in report["cuts"]]
    assert report["duration"] > 0 and report["fps"] > 0
    assert times == sorted(times) and all(0 < t < report["duration"] for t in times)
    assert [s["start"] for s in report["scenes"][1:]] == times


@pytest.mark.shared_data
def test_score_timeline_and_write_it_back(tmp_path):
    source = SHARED_DATA / "timelines" / "25fps.edl"
    midi, edit = tmp_path / "score.mid", tmp_path / "edit.otio"
    result = run_cli("score", source, "-o", midi, "--emotion", "sad", "--otio", edit, "--seed", 3)
    assert result.returncode == 0, result.stderr
    original = json.loads(run_cli("cuts", source, "--json").stdout)
    back = json.loads(run_cli("cuts", edit, "--json").stdout)
    assert [c["time"] for c in back["cuts"]] == pytest.approx([c["time"] for c in original["cuts"]], abs=1e-6)
    assert all(s["emotion_set_by_user"] for s in back["scenes"])
    sad = back["scenes"][0]
    assert sad["valence"] < 0
    _check_smf(midi, [c["time"] for c in original["cuts"]])


def test_score_rejects_unknown_emotion_and_bad_files(tmp_path):
    broken = tmp_path / "broken.xml"
    broken.write_text("<xmeml><sequence>")
    result = run_cli("score", broken, "-o", tmp_path / "a.mid")
    assert result.returncode == 2 and "broken.xml" in result.stderr and "Traceback" not in result.stderr
    result = run_cli("score", SHARED_DATA / "timelines" / "25fps.edl", "-o", tmp_path / "a.mid", "--emotion", "blorp")
    assert result.returncode == 2 and "--emotion" in result.stderr
    assert not (tmp_path / "a.mid").exists()
