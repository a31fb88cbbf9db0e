"""`python -m nppctl`: the CLI. A Ctrl-C while it is still loading is one line and exit 130, too."""

try:
    from nppctl.cli.app import main
except KeyboardInterrupt:
    import sys

    sys.stderr.write("error: interrupted while nppctl was loading: nothing was done\n")
    sys.exit(130)

main()
