"""The plugin executables and the conflist that install copies into nodes.

build_plugins(out) writes out/nppnet and out/nppnet-skel: each one executable file that a node's
own python3 runs with nothing installed. Start-up is most of a plugin call's time (an empty
script takes about 6 ms here, the Go reference's whole ADD about 8 ms), so, as measured on
Debian's python3.11:
- the file is a plain script, not a zipapp: running a zip imports runpy and importlib.util
  (4 ms) before the first line of the plugin runs;
- the script carries the modules of nppctl/plugin as byte code (plus sources for a python3 of
  another minor version) in one zlib+base64 string and imports them through a 20-line finder;
- the shebang runs /usr/bin/python3 directly (`/usr/bin/env -S python3 ...` costs 0.6 ms more)
  with FLAGS: -I -S (no site, no user paths, no PYTHON* variables) and -X frozen_modules=on
  (Debian's python3.11 otherwise loads os, codecs, io ... from .pyc files: 1.2-1.5 ms more),
  spelled as one argument because a shebang passes only one.
"""

from __future__ import annotations

import importlib.util
import ipaddress
import marshal
import os
import zlib
from binascii import b2a_base64
from pathlib import Path

from nppctl.errors import NppctlError

PLUGIN_DIR = Path(__file__).resolve().parent / "plugin"
PYTHON = "/usr/bin/python3"  # Debian's (and so a kind node's) python3
FLAGS = "-ISXfrozen_modules=on"
EXECUTABLES = {"nppnet": "nppctl.plugin.nppnet", "nppnet-skel": "nppctl.plugin.skel"}
SUPPORTED_VERSIONS = ("0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0")
_PACKAGE_INIT = b'"""nppctl, as far as the plugin executables need it: the plugin package."""\n'

# The executable's code. {code} is base64(zlib(marshal((magic, modules)))) with modules =
# {name: (path, is_package, marshalled code)}; {sources} is base64(zlib(marshal({name: source}))),
# decoded only by a python3 whose byte code differs from the builder's.
_SCRIPT = """#!{python} {flags}
# {name}: the nppnet CNI plugin's {role}, built by `nppctl plugin build` from nppctl/plugin
# (standard library only; its modules are embedded below and imported from memory).
import sys


def _embed(code, sources):
    from binascii import a2b_base64
    from marshal import loads
    from zlib import decompress

    magic, modules = loads(decompress(a2b_base64(code)))
    bootstrap = sys.modules["_frozen_importlib"]
    if magic != sys.modules["_frozen_importlib_external"].MAGIC_NUMBER:  # another python3 minor version
        texts = loads(decompress(a2b_base64(sources)))
        modules = {{n: (p, k, None, texts[n]) for n, (p, k, _) in modules.items()}}

    class EmbeddedModules:
        @staticmethod
        def find_spec(name, path=None, target=None):
            if name not in modules:
                return None
            path, is_package = modules[name][:2]
            return bootstrap.ModuleSpec(name, EmbeddedModules, origin=path, is_package=is_package)

        @staticmethod
        def create_module(spec):
            return None

        @staticmethod
        def exec_module(module):
            entry = modules[module.__name__]
            module.__file__ = entry[0]
            if entry[2] is None:
                code = compile(entry[3], entry[0], "exec", dont_inherit=True)
            else:
                code = loads(entry[2])
            exec(code, module.__dict__)

    sys.meta_path.insert(0, EmbeddedModules)


_embed("{code}", "{sources}")
from {module} import main  # noqa: E402

main()
"""


def _modules() -> dict[str, tuple[str, bool, bytes]]:
    files = [
        ("nppctl", True, _PACKAGE_INIT),
        ("nppctl.plugin", True, (PLUGIN_DIR / "__init__.py").read_bytes()),
    ]
    for path in sorted(PLUGIN_DIR.glob("*.py")):
        if path.name != "__init__.py":
            files.append((f"nppctl.plugin.{path.stem}", False, path.read_bytes()))
    return {
        name: (
            "<embedded>/" + name.replace(".", "/") + ("/__init__.py" if is_package else ".py"),
            is_package,
            source,
        )
        for name, is_package, source in files
    }


def _blob(value: object) -> str:
    return b2a_base64(zlib.compress(marshal.dumps(value), 9), newline=False).decode()


def plugin_script(name: str, module: str, python: str = PYTHON) -> bytes:
    """The text of one executable whose code runs module.main()."""
    modules = _modules()
    # optimize=2 drops docstrings and asserts: less byte code to decompress and load per call
    code = {
        n: (path, is_package, marshal.dumps(compile(source, path, "exec", dont_inherit=True, optimize=2)))
        for n, (path, is_package, source) in modules.items()
    }
    sources = {n: source for n, (_, _, source) in modules.items()}
    role = "skeleton" if name.endswith("-skel") else "executable"
    return _SCRIPT.format(
        python=python,
        flags=FLAGS,
        name=name,
        role=role,
        module=module,
        code=_blob((importlib.util.MAGIC_NUMBER, code)),
        sources=_blob(sources),
    ).encode()


def build_plugin(path: Path, module: str) -> Path:
    """Write one executable (mode 0755) at path, atomically."""
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_bytes(plugin_script(path.name, module))
    os.chmod(tmp, 0o755)
    os.replace(tmp, path)
    return path


def build_plugins(out: Path) -> list[Path]:
    """out/nppnet and out/nppnet-skel (mode 0755), as install copies them into nodes."""
    out = Path(out)
    try:
        out.mkdir(parents=True, exist_ok=True)
        return [build_plugin(out / name, module) for name, module in EXECUTABLES.items()]
    except OSError as err:
        raise NppctlError(f"cannot write the plugins into {out}: {err.strerror or err}") from None


# -- the conflist ------------------------------------------------------------------------------


def _network(value: str, what: str) -> ipaddress.IPv4Network:
    try:
        return ipaddress.IPv4Network(value, strict=False)
    except ValueError:
        raise NppctlError(f"{what} {value!r} is not an IPv4 CIDR: pass one like 10.244.1.0/24") from None


def render_conflist(
    subnet: str,
    *,
    plugin: str = "nppnet",
    bridge: str = "cni0",
    gateway: str | None = None,
    mtu: int | None = None,
    ip_masq: bool = True,
    cluster_cidr: str | None = None,
    cni_version: str = "1.0.0",
) -> str:
    """The conflist (JSON text) rendered from templates/<plugin>.conflist.j2."""
    import jinja2

    from nppctl.plugin.names import valid_ifname
    from nppctl.resources import resource_dir

    if plugin not in EXECUTABLES:
        raise NppctlError(f"unknown plugin {plugin!r}: use one of {', '.join(EXECUTABLES)}")
    net = _network(subnet, "subnet")
    if net.prefixlen > 30:
        raise NppctlError(f"subnet {net} is too small: use /30 or larger (a gateway and pods)")
    if gateway is not None:
        try:
            gw = ipaddress.IPv4Address(gateway)
        except ValueError:
            raise NppctlError(f"gateway {gateway!r} is not an IPv4 address") from None
        if gw not in net or gw in (net.network_address, net.broadcast_address):
            raise NppctlError(f"gateway {gw} is not a host address of subnet {net}")
    if not valid_ifname(bridge):
        raise NppctlError(
            f"bridge {bridge!r} is not a valid interface name: 1-15 characters, no '/' or spaces"
        )
    if mtu is not None and not 68 <= mtu <= 65535:
        raise NppctlError(f"mtu {mtu} is out of range: use 68 to 65535")
    cluster = str(_network(cluster_cidr, "cluster CIDR")) if cluster_cidr else None
    if cni_version not in SUPPORTED_VERSIONS:
        supported = ", ".join(SUPPORTED_VERSIONS)
        raise NppctlError(f"cniVersion {cni_version!r} is not supported: use one of {supported}")
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(resource_dir("templates"))),
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=True,
    )
    template = env.get_template(f"{plugin}.conflist.j2")
    return template.render(
        cni_version=cni_version,
        plugin=plugin,
        subnet=str(net),
        bridge=bridge,
        gateway=gateway,
        mtu=mtu,
        ip_masq=ip_masq,
        cluster_cidr=cluster,
    )
