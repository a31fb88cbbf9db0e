"""CNI error codes (SPEC.md, "Error" section) and the exception the plugin raises to report one.

No imports here: every plugin call loads this module, and `typing` alone costs milliseconds.
"""

INCOMPATIBLE_VERSION = 1
UNSUPPORTED_FIELD = 2
CONTAINER_UNKNOWN = 3
INVALID_ENVIRONMENT = 4
IO_FAILURE = 5
DECODE_FAILURE = 6
INVALID_CONFIG = 7
TRY_AGAIN_LATER = 11
# CNI 1.1.0 STATUS: the plugin cannot process ADD requests now.
PLUGIN_NOT_AVAILABLE = 50
# Codes 100 and up are the plugin's own.
INTERNAL = 100


class CNIError(Exception):
    """Becomes the CNI error object {cniVersion, code, msg, details} on stdout, exit 1."""

    def __init__(self, code: int, msg: str, details: "str | None" = ""):
        super().__init__(msg)
        self.code = code
        self.msg = msg
        self.details = details or ""
