"""Editor timelines as a source of scenes, and the score written back into them: OTIO, EDL,
FCP7 XML, FCPXML and AAF through OpenTimelineIO's adapter plugins (the `timelines` extra)."""
__all__ = ["TimelineScenes", "read_timeline", "write_timeline"]


def __getattr__(name: str):
    """The reader and writer, loaded (with OpenTimelineIO) on first use."""
    if name in __all__:
        from . import timeline

        return getattr(timeline, name)
    raise AttributeError(name)
