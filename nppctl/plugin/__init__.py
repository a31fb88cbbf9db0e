"""nppnet: a CNI bridge plugin in standard-library Python (3.9+).

This package runs on a kind node's own python3 with nothing installed: it imports only the
standard library and its own modules, never anything else from nppctl.
"""
