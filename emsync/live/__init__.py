"""Live MIDI: play a score to a MIDI port, following a host's clock, transport and Song
Position Pointer (the `live` extra: python-rtmidi)."""
