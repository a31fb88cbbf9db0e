"""JSON in and out through the C accelerator `_json` directly.

`import json` costs about 6 ms at start-up (it imports `re`), as much as the whole Go reference
plugin's ADD. The C scanner and encoder behind it need no `re`, so the plugin uses them and
falls back to the `json` module only where `_json` is missing.
"""

try:
    import _json
except ImportError:  # pragma: no cover - every CPython build ships _json
    _json = None


def _reject_constant(name):
    raise ValueError(f"invalid JSON constant {name}")


class _Ctx:
    """The attributes `_json.make_scanner` reads from its context (as json.JSONDecoder holds them)."""

    strict = True
    object_hook = None
    object_pairs_hook = None
    parse_float = float
    parse_int = int
    parse_constant = staticmethod(_reject_constant)
    memo = {}


_WS = " \t\n\r"

if _json is not None:
    _scan = _json.make_scanner(_Ctx)
    _encode = _json.make_encoder(
        None, None, _json.encode_basestring_ascii, None, ": ", ", ", True, False, False
    )
else:  # pragma: no cover
    _scan = _encode = None


def loads(text):
    """Decode one JSON document; ValueError when it is not exactly one valid document."""
    if _scan is not None:
        start = len(text) - len(text.lstrip(_WS))
        try:
            value, end = _scan(text, start)
            if not text[end:].strip(_WS):
                return value
        except (StopIteration, SystemError, RecursionError, ValueError):
            # the scanner reports most errors through json.decoder, which is not loaded here
            pass
    return _slow_loads(text)


def _slow_loads(text):
    """The json module's verdict, with its precise message (only on the error path)."""
    import json

    try:
        return json.loads(text, parse_constant=_reject_constant)
    except RecursionError:
        raise ValueError("JSON nested too deeply") from None


def dumps(value):
    """Encode value as compact-ish JSON (sorted keys, ASCII only)."""
    if _encode is None:  # pragma: no cover
        import json

        return json.dumps(value, sort_keys=True)
    return "".join(_encode(value, 0))
