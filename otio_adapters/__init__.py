"""Editor timeline formats (OTIO, EDL, FCP7 XML, FCPXML, AAF) translated to and from emsync scenes."""
