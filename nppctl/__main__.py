from nppctl.cli import main

main()
