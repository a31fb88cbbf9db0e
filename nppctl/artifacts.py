"""The plugin executables and the conflist that install copies into nodes.

build_plugins(out) writes out/nppnet and out/nppnet-skel: each one file, a zip archive of
nppctl/plugin behind a python3 shebang (a zipapp), runnable by a node's own python3 with nothing
installed. Start-up time is the plugin's biggest cost, so the archive is stored uncompressed (no
zlib), holds byte code beside the sources (no compiling on each call: unchecked-hash .pyc that a
python3 of another minor version skips in favour of the .py next to it), and the shebang runs
python3 with -I -S (no site, no user paths, no PYTHON* variables).
"""

from __future__ import annotations

import importlib.util
import ipaddress
import os
import stat
import zipfile
from pathlib import Path

from nppctl.errors import NppctlError

PLUGIN_DIR = Path(__file__).resolve().parent / "plugin"
# `env -S` splits "python3 -IS" into arguments; python3 is looked up on PATH like any plugin tool.
SHEBANG = b"#!/usr/bin/env -S python3 -IS\n"
EXECUTABLES = {"nppnet": "nppctl.plugin.nppnet", "nppnet-skel": "nppctl.plugin.skel"}
SUPPORTED_VERSIONS = ("0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0")
_STAMP = (2024, 1, 1, 0, 0, 0)  # fixed entry times: the same sources give the same archive
_PACKAGE_INIT = b'"""nppctl, as far as the plugin executables need it: the plugin package."""\n'


def _entry(archive: zipfile.ZipFile, name: str, data: bytes) -> None:
    info = zipfile.ZipInfo(name, date_time=_STAMP)
    info.external_attr = 0o644 << 16
    archive.writestr(info, data, compress_type=zipfile.ZIP_STORED)


def _byte_code(source: bytes, name: str) -> bytes:
    code = compile(source, name, "exec", dont_inherit=True)
    source_hash = importlib.util.source_hash(source)
    from importlib._bootstrap_external import _code_to_hash_pyc  # the layout py_compile writes

    return bytes(_code_to_hash_pyc(code, source_hash, checked=False))


def _sources() -> list[tuple[str, bytes]]:
    files = [("nppctl/__init__.py", _PACKAGE_INIT)]
    for path in sorted(PLUGIN_DIR.glob("*.py")):
        files.append((f"nppctl/plugin/{path.name}", path.read_bytes()))
    return files


def build_plugin(path: Path, module: str, shebang: bytes = SHEBANG) -> Path:
    """Write one executable zipapp at path whose __main__ runs module.main()."""
    tmp = path.with_name(f".{path.name}.tmp")
    main = f"from {module} import main\nmain()\n".encode()
    with open(tmp, "wb") as f:
        f.write(shebang)
        with zipfile.ZipFile(f, "w") as archive:
            _entry(archive, "__main__.py", main)
            for name, source in _sources():
                _entry(archive, name, source)
                _entry(archive, name + "c", _byte_code(source, name))
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


def is_executable(path: Path) -> bool:
    return path.is_file() and bool(path.stat().st_mode & stat.S_IXUSR)


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
