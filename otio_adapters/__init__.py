"""Editor timeline formats (OTIO, EDL, FCP7 XML, FCPXML, AAF) translated to and from emsync scenes."""
from .timeline import TimelineScenes, read_timeline, write_timeline

__all__ = ["TimelineScenes", "read_timeline", "write_timeline"]
