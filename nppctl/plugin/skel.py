"""nppnet-skel, the lab's first step: logs every call; ADD fails on purpose, the rest succeed."""

import sys

from .errors import INTERNAL, CNIError
from .protocol import run


def cmd_add(call, conf, version):
    raise CNIError(
        INTERNAL,
        "nppnet-skel is a skeleton plugin: it logged this ADD and sets up no network "
        "(install nppnet to give pods an address)",
    )


def cmd_other(call, conf, version):
    return None


COMMANDS = {"ADD": cmd_add, "DEL": cmd_other, "CHECK": cmd_other, "STATUS": cmd_other, "GC": cmd_other}


def main():
    sys.exit(run(COMMANDS))


if __name__ == "__main__":
    main()
