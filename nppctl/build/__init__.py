"""Build: the artifacts nppctl ships into nodes, made on this machine.

artifacts (the nppnet and nppnet-skel executables: nppctl/plugin's byte code embedded in one
file each; the conflist rendered from templates/; PYTHON, the interpreter they run with) and
plugincheck (is a user's file a CNI plugin? it answers VERSION), and record (which byte code an
executable ran, told by its loader: for the bench and the tests).

May import: the islands (nppctl.plugin, nppctl.nodeside: read as files or for a constant) and
the base (nppctl.errors, nppctl.resources). Never access, lab or cli.
"""
