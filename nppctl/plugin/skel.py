"""nppnet-skel, the lab's first step: logs every call; ADD fails on purpose, the rest succeed."""

from . import protocol
from .errors import INTERNAL, CNIError


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
    protocol.main(COMMANDS)


if __name__ == "__main__":
    main()
