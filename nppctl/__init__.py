"""nppctl: the kind CNI lab in one command, and the nppnet plugin it installs."""

__version__ = "0.1.0"
