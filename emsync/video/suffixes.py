"""Which file names are videos, for hosts that search folders (emsync batch): a table with no
dependencies. `emsync score` itself reads anything that is not a timeline as a video."""

SUFFIXES = frozenset({".mp4", ".m4v", ".mov", ".mkv", ".webm", ".avi", ".mxf", ".mts", ".m2ts", ".ts", ".mpg",
                      ".mpeg", ".wmv", ".flv", ".3gp", ".ogv", ".dv"})
