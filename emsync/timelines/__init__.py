"""Editor timelines as a source of scenes, and the score written back into them: OTIO, EDL,
FCP7 XML, FCPXML and AAF through OpenTimelineIO's adapter plugins (the `timelines` extra)."""
from .timeline import TimelineScenes, read_timeline, write_timeline

__all__ = ["TimelineScenes", "read_timeline", "write_timeline"]
