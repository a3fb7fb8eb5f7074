"""Which file names are editor timelines: a table with no dependencies, so a host can tell a
timeline from a video without loading OpenTimelineIO."""

# suffix -> (adapter name, what the file should be, for messages)
SUFFIXES = {
    ".otio": ("otio_json", "OpenTimelineIO JSON"),
    ".otioz": ("otioz", "OpenTimelineIO zip bundle"),
    ".otiod": ("otiod", "OpenTimelineIO directory bundle"),
    ".edl": ("cmx_3600", "CMX3600 EDL"),
    ".xml": ("fcp_xml", "Final Cut Pro 7 XML"),
    ".fcpxml": ("fcpx_xml", "Final Cut Pro X XML"),
    ".fcpxmld": ("fcpx_xml", "Final Cut Pro X XML bundle"),
    ".aaf": ("AAF", "AAF"),
}
