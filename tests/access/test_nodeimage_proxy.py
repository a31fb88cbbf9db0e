"""The proxies apt sees while `up` adds python3 to a node image, as kind v0.33 gives them to its nodes:
~/.docker/config.json's (the Docker SDK puts them into the container), overridden, both cases, by
nppctl's own HTTP(S)_PROXY/NO_PROXY."""

from __future__ import annotations

import docker
import pytest

from nppctl.access import nodeimage


def test_proxy_env_takes_either_case_and_gives_both():
    assert nodeimage.proxy_env({}) == {}
    assert nodeimage.proxy_env({"https_proxy": "http://p:3128", "NO_PROXY": "10.0.0.0/8", "HOME": "/"}) == {
        "HTTPS_PROXY": "http://p:3128", "https_proxy": "http://p:3128",
        "NO_PROXY": "10.0.0.0/8", "no_proxy": "10.0.0.0/8",
    }
    both = nodeimage.proxy_env({"HTTP_PROXY": "http://upper", "http_proxy": "http://lower"})
    assert both["http_proxy"] == both["HTTP_PROXY"] == "http://upper"


@pytest.fixture
def config_proxy_box(tmp_path, monkeypatch, docker_client, node_image):
    """A container made as nodeimage._build makes its own, by a client reading a config.json with proxies."""
    (tmp_path / "config.json").write_text(
        '{"proxies": {"default": {"httpProxy": "http://config.lab.test:3128", "noProxy": "10.0.0.0/8"}}}'
    )
    monkeypatch.setenv("DOCKER_CONFIG", str(tmp_path))
    client = docker.from_env()
    box = client.containers.run(node_image, entrypoint=["sleep", "infinity"], command=[], detach=True,
                                init=False)
    yield box
    box.remove(force=True)


def _apt_env(box, environ, monkeypatch) -> dict[str, str]:
    for name in nodeimage.PROXY_VARS:
        monkeypatch.delenv(name, raising=False)
    for name, value in environ.items():
        monkeypatch.setenv(name, value)
    said = []
    nodeimage._apt(box, ["env"], said.append, "base")  # the same exec apt-get runs in
    pairs = [s.split(": ", 1)[1] for s in said]
    return {k: v for k, _, v in (p.partition("=") for p in pairs) if k.lower().endswith("_proxy")}


def test_apt_gets_config_json_proxies_unless_the_environment_names_its_own(config_proxy_box, monkeypatch):
    assert _apt_env(config_proxy_box, {}, monkeypatch) == {
        "HTTP_PROXY": "http://config.lab.test:3128", "http_proxy": "http://config.lab.test:3128",
        "NO_PROXY": "10.0.0.0/8", "no_proxy": "10.0.0.0/8",
    }
    seen = _apt_env(config_proxy_box, {"HTTP_PROXY": "http://env.lab.test:8080"}, monkeypatch)
    assert seen["HTTP_PROXY"] == seen["http_proxy"] == "http://env.lab.test:8080"  # apt reads lower case
