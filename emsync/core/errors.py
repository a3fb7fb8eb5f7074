"""One exception type the CLI turns into a single readable line."""


class EmsyncError(Exception):
    """A user-facing problem: the message names the file or field at fault."""
