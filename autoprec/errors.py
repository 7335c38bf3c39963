"""Errors a user can fix (exit 2) and failures of autoprec itself (exit 3)."""


class UserError(Exception):
    """A problem with the user's input; the message names the problem and the fix."""


class InternalError(Exception):
    """autoprec broke one of its own promises (e.g. a printed score differs from the exported model's)."""
