"""Backend that DAW/NLE plugins talk to (OSC service, live MIDI), thin over emsync_core."""
