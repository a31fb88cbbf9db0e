"""podfailures.parse: kubelet's FailedCreatePodSandBox message split into sandbox, plugin, command and the
plugin's own words (the messages as containerd v2 writes them; the kind tests see real ones)."""

from nppctl.lab.podfailures import parse

SANDBOX = "4f1c2a9b7d3e" + "0" * 52
ADD = (
    "Failed to create pod sandbox: rpc error: code = Unknown desc = failed to setup network for sandbox "
    f'"{SANDBOX}": plugin type="nppnet" name="nppnet" failed (add): student plugin: no address left'
)
DEL = (
    "Failed to create pod sandbox: rpc error: code = Unknown desc = failed to destroy network for sandbox "
    f'"{SANDBOX}": plugin type="mynet" failed (delete): veth busy'
)


def test_an_add_failure_names_the_sandbox_the_plugin_and_its_words():
    got = parse(ADD)
    assert got == {"sandbox": SANDBOX, "plugin": "nppnet", "command": "ADD",
                   "said": "student plugin: no address left"}


def test_a_delete_failure_is_a_del():
    got = parse(DEL)
    assert got["command"] == "DEL" and got["plugin"] == "mynet" and got["said"] == "veth busy"


def test_a_message_of_another_shape_is_kept_whole():
    got = parse("Failed to create pod sandbox: rpc error: code = DeadlineExceeded\n desc = context deadline")
    assert got["sandbox"] is None and got["plugin"] is None and got["command"] is None
    whole = "Failed to create pod sandbox: rpc error: code = DeadlineExceeded desc = context deadline"
    assert got["said"] == whole
