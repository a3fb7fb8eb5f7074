"""The scoring service without transport: open a timeline, a video or a scene file, set
emotions and settings, generate, regenerate a range, undo, export. The CLI, the OSC host and
batch runs all go through it, so each rule (whose emotion wins, boundaries, markers,
validation) lives once."""
