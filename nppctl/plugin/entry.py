"""The nppnet executable's entry point: main().

A VERSION call answers without loading the commands' code (nppnet.py, ~24 kB of byte code
that every module of an ADD follows): each module a call loads is start-up time it pays.
"""

from . import protocol


def _commands():
    from .nppnet import COMMANDS

    return COMMANDS


def main():
    protocol.main(_commands)
