"""nppctl: the kind CNI lab in one command, and the nppnet plugin it installs.

The packages are the layers, top to bottom (an import points down, never up, never in a circle:
tests/test_layers.py):

  cli/          face: typer commands, rich rendering
  lab/ netmap/ conformance/launch.py conformance/bundle.py
                the lab's operations (up, install, status, check, logs, ...), the map, the card's launch
  access/       node containers (Docker SDK), Kubernetes API, providers, node image, agent and runtime
  build/        the plugin executables and the conflist
  plugin/ nodeside/ conformance/ (the card's engine: bundle.ENGINE)
                islands: standard library only, each runs alone in a node or a sandbox
  errors.py resources.py
                base: the one error type; templates and configs (checkout or wheel)
"""

__version__ = "0.1.0"
