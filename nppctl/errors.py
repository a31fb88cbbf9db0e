"""The one error type the CLI shows to a user: one line saying what is wrong and what to do."""


class NppctlError(Exception):
    """A failure the user can act on. str(err) is the whole one-line message.

    Raise it with what went wrong and what to do, e.g.
    NppctlError("cluster 'kind' not found: create it with `nppctl up --name kind`").
    The CLI prints it as one line (no traceback unless --debug) and exits 1.
    """
