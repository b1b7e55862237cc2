"""Exception types of the lictrt runtime (one-line messages; CLIs print them without a traceback)."""


class LictrtError(Exception):
    """Base class of lictrt runtime errors."""


class BitstreamError(LictrtError, ValueError):
    """A bitstream is corrupt, truncated, of an unknown version, or does not match the decoder's model."""


class CoderArgumentError(LictrtError, ValueError):
    """Bad input to the entropy coder: malformed tables, an index outside the tables, a wrong dtype/shape."""


class GroupError(LictrtError, ValueError):
    """A requested group is not in the bitstream, or the bundle's plan has no groups."""
