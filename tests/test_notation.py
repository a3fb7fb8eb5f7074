"""A cue as a composer opens it: MuseScore 3 reads the written tempo and meter, with plain values.

Skipped only where MuseScore cannot run (`.ci/run` installs Debian's musescore3 and xvfb)."""
from __future__ import annotations

import mido
import pytest

from conftest import REPO, run_cli
from emsync.preview.notation import musescore, read_in_musescore

pytestmark = pytest.mark.skipif(musescore() is None, reason="MuseScore 3 not installed (apt-get install musescore3 xvfb)")


@pytest.mark.parametrize("meter", ["4/4", "3/4"])
def test_musescore_reads_the_written_tempo_and_meter_in_plain_values(tmp_path, meter):
    cue = tmp_path / "harbour.mid"
    done = run_cli("score", REPO / "examples" / "harbour.otio", "--seed", 1, "--meter", meter, "-o", cue)
    assert done.returncode == 0, done.stderr
    written = next(mido.tempo2bpm(m.tempo) for m in mido.MidiFile(cue).tracks[0] if m.type == "set_tempo")
    reading = read_in_musescore(cue)
    assert reading.meter == meter
    assert reading.bpm == pytest.approx(written, rel=0.01), "MuseScore kept the file's tempo"
    assert reading.short_share < 0.05, f"{reading.short_share:.1%} of notes and rests are 32nd or shorter"
    assert reading.tuplet_share < 0.05, f"{reading.tuplets} tuplets in {reading.events} notes and rests"
