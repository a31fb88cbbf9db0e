"""The plugin executables and the conflist that install copies into nodes.

build_plugins(out) writes out/nppnet and out/nppnet-skel: each one executable file that a node's own
python3 runs with nothing installed. Its shebang (PYTHON FLAGS and a one-line program) reads the file and
runs its first dozen lines, which check it and run the loader; the loader, the modules of the entry
module's import closure (byte code, one base64 line each, decoded when first used) and their sources sit
in comment lines python never tokenizes. A python3 whose byte code differs from the builder's runs a
short boot as source instead, which reads byte code made for it from CACHE_DIR (compiled on its first
call by the builder's compiler in a fresh interpreter, written whole under a lock, trusted only when its
key, checksum and owner are right) or else compiles the sources for itself. Byte code is compiled and
marshalled in a fresh interpreter (fixed environment and hash seed): same sources and python, same
bytes. render_conflist() renders templates/<plugin>.conflist.j2.

Why each choice, with what it was measured to cost: docs/plugin.md ("Why it is built this way").
"""

from __future__ import annotations

import ast
import hashlib
import importlib.util
import ipaddress
import marshal
import os
import subprocess
import sys
import zlib
from binascii import b2a_base64
from pathlib import Path

from nppctl.errors import NppctlError

PLUGIN_DIR = Path(__file__).resolve().parents[1] / "plugin"
PLUGIN_PACKAGE = "nppctl.plugin"
PYTHON = "/usr/bin/python3"  # Debian's (and so a kind node's) python3
CACHE_DIR = "/var/cache/nppnet"  # byte code for a node's python3 when it is not the builder's
FLAGS = "-ISc"  # then the code: python3 -I -S -c CODE FILE
EXECUTABLES = {"nppnet": "nppctl.plugin.entry", "nppnet-skel": "nppctl.plugin.skel"}
SUPPORTED_VERSIONS = ("0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0")
_PACKAGE_INIT = b'"""nppctl, as far as the plugin executables need it: the plugin package."""\n'
_RESTARTED = "--restarted"  # argv marker of the one re-exec after a replaced file

# The executable: its first line runs python3 -I -S -c CODE FILE; CODE reads the file into `d` and
# runs the lines up to the one holding only "#": a few lines python compiles on every call (each
# line compiled costs: ~0.5 ms per kB of code on a loaded 2-core machine), which run the loader
# (byte code) when the file is whole and this python is the builder's. Then comment lines, never
# tokenized: the tag (a digest of what follows), the loader as byte code, the slow start (source),
# the modules, the sources.
_SHEBANG = (
    "#!{python} {flags}import sys,posix;f=posix.open(sys.argv[1],0);d=posix.read(f,posix.fstat(f).st_size);"
    'exec(d[:d.find(b"\\n#\\n")])\n'
)
_SCRIPT = (
    _SHEBANG
    + """\
# {name}: the nppnet CNI plugin's {role}, built by `nppctl plugin build` from nppctl/plugin
# (standard library only). Its code follows as comment lines: {modules}.
from binascii import a2b_base64

whole = len(d) == {size} and d[{tag_at}:{tag_end}] == {tag!r}
magic = sys.modules["_frozen_importlib_external"].MAGIC_NUMBER
if whole and magic == {magic!r}:
    from marshal import loads

    exec(loads(a2b_base64(d[{boot_at}:{boot_end}])), {{"data": d, "base": {base}}})
else:  # the slow start: changed since the exec, or another python3 (byte code kept in {cache})
    slow = {{"data": d, "base": {base}, "whole": whole, "magic": magic}}
    exec(a2b_base64(d[{boot_src_at}:{boot_src_end}]), slow)
#
"""
)

# The slow start, run as source (with `data`, `base`, `whole`: the file is as built, and `magic`):
# the restart when the file changed, else the boot of a python3 whose byte code differs from the
# builder's (another minor version): the byte code for this python comes from the cache file
# {cache}/{name}.<magic>.{payload}, keyed by this python's magic number and the digest of the
# executable's modules and sources, and trusted only when its own header says the same key and
# the checksum of its body matches. Missing (the first call on this python), the maker (in the
# sources line) writes it. Its body is the list of marshalled code: the loader, then the modules.
_BOOT = """from marshal import loads
from posix import O_NOFOLLOW, close, fstat, geteuid, open, read, stat

if not whole:  # changed since the exec: the restart line
    from binascii import a2b_base64

    exec(a2b_base64(data[base - {restart_len} : base - 1]))
path = "{cache}/{name}." + magic.hex() + ".{payload}"
key = magic + b"{payload}"


def cached():  # folder and file this user's alone (mode & 0o022 == 0), header and checksum right
    from binascii import crc32

    try:
        st = stat("{cache}")
        if st.st_uid == geteuid() and not st.st_mode & 18:
            fd = open(path, O_NOFOLLOW)
            st = fstat(fd)
            blob = read(fd, st.st_size)
            close(fd)
            body = blob[{key_len} + 4 :]
            if st.st_uid == geteuid() and not st.st_mode & 18:
                if blob[: {key_len} + 4] == key + crc32(body).to_bytes(4, "big"):
                    return loads(body)
    except (OSError, ValueError, EOFError, TypeError):
        pass


codes = cached()
if codes is None:
    from binascii import a2b_base64
    from zlib import decompress

    sources = loads(decompress(a2b_base64(data[base + {sources[0]} : base + {sources[1]}])))
    exec(sources[2], globals())
exec(loads(codes[0]), {{"data": data, "base": base, "codes": codes, "cached": path}})
"""

# The restart (source, run by the slow start with `data`): a file changed in place since the exec
# (a copy over it, not a rename) is run again once, then refused with error 11.
_RESTART = """import sys
from posix import _exit, execv

if sys.argv[2:] != ["{restarted}"]:
    python, code = data[2 : data.find(b"\\n")].split(b" ", 1)
    execv(python, [python, code, sys.argv[1], "{restarted}"])
sys.stdout.write('{{"cniVersion": "1.0.0", "code": 11, "msg": "the plugin file changed '
                 'while it started: try again", "details": ""}}')
sys.stdout.flush()
_exit(1)
"""

# The maker, run by the boot (in its namespace) when the cache is missing or does not match:
# compiles the loader and the modules in a fresh interpreter of this python (the builder's
# compiler, fixed hash seed: the same sources give the same bytes, as `nppctl plugin build` run
# by this python would embed them) and writes the cache file whole (a temporary file renamed),
# under an exclusive lock: parallel first calls wait for one compile and read its file. It
# removes this executable's other cache files (another python, an older build). Any failure (no
# /var/cache, read-only, no fork): this call compiles from the sources for itself alone.
_MAKER = """import posix
import sys
from binascii import crc32

loader, compiler, _, items = sources
items = [("<embedded>/loader.py", loader), *items]
folder, _, own = path.rpartition("/")
prefix = own.partition(".")[0] + "."


def fresh():
    import subprocess

    argv = [sys.executable, "-S", "-s", "-X", "no_debug_ranges", "-c", compiler]
    done = subprocess.run(
        argv, input=dumps(items), env={"PYTHONHASHSEED": "0"}, capture_output=True, timeout=120
    )
    if done.returncode != 0:
        raise OSError("the compiler failed: " + done.stderr.decode(errors="replace")[-200:])
    return done.stdout


def write(body):
    blob = key + crc32(body).to_bytes(4, "big") + body
    tmp = path + ".tmp"
    try:
        posix.unlink(tmp)  # left by a killed maker (we hold the lock)
    except FileNotFoundError:
        pass
    flags = posix.O_WRONLY | posix.O_CREAT | posix.O_EXCL | posix.O_NOFOLLOW | posix.O_CLOEXEC
    fd = posix.open(tmp, flags, 0o644)
    try:
        view = memoryview(blob)
        while view:
            view = view[posix.write(fd, view) :]
        posix.fsync(fd)
    finally:
        posix.close(fd)
    posix.replace(tmp, path)
    for entry in posix.listdir(folder):
        if entry.startswith(prefix) and entry != own:
            try:
                posix.unlink(folder + "/" + entry)
            except OSError:
                pass


def make():
    import fcntl

    try:
        posix.mkdir(folder, 0o755)
    except FileExistsError:
        pass
    st = posix.stat(folder)
    if st.st_uid != posix.geteuid() or st.st_mode & 0o022:
        raise OSError(folder + " is not this user's alone: not used")
    flags = posix.O_RDWR | posix.O_CREAT | posix.O_NOFOLLOW | posix.O_CLOEXEC
    lock = posix.open(folder + "/.lock", flags, 0o600)
    try:
        fcntl.flock(lock, fcntl.LOCK_EX)
        made = cached()
        if made is None:
            body = fresh()
            made = loads(body)
            write(body)
        return made
    finally:
        posix.close(lock)


from marshal import dumps  # noqa: E402

try:
    codes = make()
except Exception:  # noqa: BLE001 - whatever fails, the sources are here
    codes = [dumps(compile(text, origin, "exec", dont_inherit=True, optimize=2)) for origin, text in items]
    path = None
"""

# The loader (run with `data`, the file, and `base`, where the module lines start; from the boot
# of another python also `codes`, its list of marshalled code, and `cached`, the file they came
# from): makes the embedded modules importable, each one's code run when first used, and runs
# {module}.main(). {modules} maps a module name to (is_package, start, end) of its base64 byte
# code line relative to base. A module's __cached__ says where its byte code came from.
_LOADER = """import gc
import sys
from binascii import a2b_base64
from marshal import loads

gc.disable()  # one short call: no cycles worth collecting, and imports would trigger collections

modules = {modules!r}
codes = globals().get("codes")
index = {{name: i for i, name in enumerate(modules, 1)}}
plain = type(sys)


def run(module):
    name = module.__name__
    if codes is None:
        code = loads(a2b_base64(data[base + modules[name][1] : base + modules[name][2]]))
    else:
        code = loads(codes[index[name]])
    exec(code, module.__dict__)


# Each module is in sys.modules from the start, its code runs when one of its names is first
# asked for (import statements then find it there: no finder, spec or loader, the import
# machinery's ~25 us a module); from then on it is a plain module.
class EmbeddedModule(plain):
    def __getattr__(self, attr):
        if attr[:2] == "__" or type(self) is not EmbeddedModule:
            raise AttributeError(attr)
        self.__class__ = plain
        run(self)
        return getattr(self, attr)


cached = globals().get("cached", "<embedded>")
for name, (is_package, _, _) in modules.items():  # sorted: a package before its modules
    module = EmbeddedModule(name)
    module.__file__ = "<embedded>/" + name.replace(".", "/") + ("/__init__.py" if is_package else ".py")
    module.__package__ = name if is_package else name.rpartition(".")[0]
    module.__cached__ = cached
    sys.modules[name] = module
    parent, _, child = name.rpartition(".")
    if parent:
        setattr(sys.modules[parent], child, module)
    if is_package:
        module.__path__ = []
        module.__class__ = plain
        run(module)

from {module} import main  # noqa: E402

main()
"""

# Run by a fresh `python3 -S -s` with an empty environment but PYTHONHASHSEED=0: stdin is
# marshal([(origin, source), ...]), stdout marshal([code bytes, ...]). From python 3.11 on, each
# code object's location table says "no location" for all its code (1 byte per 8 code units
# instead of ~20% of the byte code): nothing in the plugin shows line numbers (a failure
# becomes a CNI error object naming the exception), and tracebacks print "line None".
_COMPILER = """\
import gc, marshal, sys, types
gc.disable()


def no_locations(code):
    consts = tuple(no_locations(c) if isinstance(c, types.CodeType) else c for c in code.co_consts)
    units = len(code.co_code) // 2
    table = bytes(0xF8 | (min(8, units - i) - 1) for i in range(0, units, 8))
    bare = code.replace(co_linetable=table, co_consts=consts)
    if list(bare.co_positions()) != [(None, None, None, None)] * units:  # a table format we do not know
        return code.replace(co_consts=consts)
    return bare


out = []
for origin, source in marshal.loads(sys.stdin.buffer.read()):
    code = compile(source, origin, "exec", dont_inherit=True, optimize=2)
    if sys.version_info >= (3, 11):
        code = no_locations(code)
    out.append(marshal.dumps(code))
    del code
sys.stdout.buffer.write(marshal.dumps(out))
"""


def _origin(name: str, is_package: bool) -> str:
    return "<embedded>/" + name.replace(".", "/") + ("/__init__.py" if is_package else ".py")


def _plugin_sources() -> dict[str, tuple[bool, bytes]]:
    """{module name: (is_package, source)} of everything an executable may carry."""
    sources = {
        "nppctl": (True, _PACKAGE_INIT),
        PLUGIN_PACKAGE: (True, (PLUGIN_DIR / "__init__.py").read_bytes()),
    }
    for path in sorted(PLUGIN_DIR.glob("*.py")):
        if path.name != "__init__.py":
            sources[f"{PLUGIN_PACKAGE}.{path.stem}"] = (False, path.read_bytes())
    return sources


def _imports(name: str, is_package: bool, source: bytes) -> set[str]:
    """The plugin modules one module's source imports anywhere (function-level imports too)."""
    package = name if is_package else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = package
            for _ in range(node.level - 1):
                base = base.rpartition(".")[0]
            module = node.module or ""
            if node.level:
                module = f"{base}.{module}" if module else base
            found.add(module)
            found.update(f"{module}.{a.name}" for a in node.names)  # `from . import fs`
    return found


def import_closure(module: str, sources: dict[str, tuple[bool, bytes]]) -> list[str]:
    """The plugin modules (and their packages) running `module` can import, sorted."""
    todo, seen = [module], set()
    while todo:
        name = todo.pop()
        if name in seen or name not in sources:
            continue
        seen.add(name)
        parts = name.split(".")
        todo += [".".join(parts[:i]) for i in range(1, len(parts))]
        todo += sorted(_imports(name, *sources[name]))
    return sorted(seen)


def _compile_fresh(items: list[tuple[str, bytes]]) -> list[bytes]:
    """marshal(compile(source)) of each (origin, source), done by a fresh interpreter."""
    done = subprocess.run(
        [sys.executable, "-S", "-s", "-X", "no_debug_ranges", "-c", _COMPILER],
        input=marshal.dumps(items),
        env={"PYTHONHASHSEED": "0"},
        capture_output=True,
        check=False,
    )
    if done.returncode != 0:
        last = (done.stderr.decode(errors="replace").strip() or "no output").splitlines()[-1]
        raise NppctlError(f"compiling the plugin modules failed: {last}")
    return marshal.loads(done.stdout)


def _line(payload: bytes) -> bytes:
    return b"#" + b2a_base64(payload, newline=False) + b"\n"


def plugin_script(name: str, module: str, python: str = PYTHON, cache: str = CACHE_DIR) -> bytes:
    """The bytes of one executable whose code runs module.main(); another python3 than the
    builder's keeps the byte code made for it in the folder `cache`."""
    everything = _plugin_sources()
    names = import_closure(module, everything)
    items = [(_origin(n, everything[n][0]), everything[n][1]) for n in names]
    magic = importlib.util.MAGIC_NUMBER
    module_lines = [_line(code) for code in _compile_fresh(items)]
    spans, at = {}, 0
    for n, line in zip(names, module_lines, strict=True):
        spans[n] = (everything[n][0], at + 1, at + len(line) - 1)
        at += len(line)
    # the loader knows each module line's place relative to the first one (`base`, which the
    # script passes in), so it is compiled once the modules are
    loader = _LOADER.format(modules=spans, module=module)
    sources = (loader.encode(), _COMPILER.encode(), _MAKER.encode(), items)
    # marshal version 2 has no back references: the bytes do not follow this process's refcounts
    sources_line = _line(zlib.compress(marshal.dumps(sources, 2), 9))
    sources_span = (at + 1, at + len(sources_line) - 1)
    tail = b"".join(module_lines) + sources_line
    payload = hashlib.sha256(tail).hexdigest()[:16]
    restart_line = _line(_RESTART.format(restarted=_RESTARTED).encode())
    boot = _BOOT.format(
        cache=cache,
        name=name,
        payload=payload,
        key_len=4 + len(payload),  # a magic number is 4 bytes
        sources=sources_span,
        restart_len=len(restart_line),
    )
    loader_code = _compile_fresh([("<embedded>/loader.py", loader.encode())])[0]
    boot_lines = [_line(loader_code), _line(boot.encode()), restart_line]
    tag = b"#" + hashlib.sha256(b"".join(boot_lines) + tail).hexdigest()[:16].encode() + b"\n"
    role = "skeleton" if name.endswith("-skel") else "executable"

    def script(code_len: int) -> bytes:
        boot_at = code_len + len(tag)
        base = boot_at + sum(len(line) for line in boot_lines)
        return _SCRIPT.format(
            python=python,
            flags=FLAGS,
            name=name,
            role=role,
            modules=", ".join(names),
            restarted=_RESTARTED,
            cache=cache,
            size=base + len(tail),
            tag_at=code_len,
            tag_end=boot_at,
            tag=tag,
            magic=magic,
            boot_at=boot_at + 1,
            boot_end=boot_at + len(boot_lines[0]) - 1,
            boot_src_at=boot_at + len(boot_lines[0]) + 1,
            boot_src_end=boot_at + len(boot_lines[0]) + len(boot_lines[1]) - 1,
            base=base,
        ).encode()

    # the code holds offsets of the lines after it: lay out until the code's length is stable
    code = b""
    for _ in range(8):
        again = script(len(code))
        settled = len(again) == len(code)
        code = again
        if settled:
            break
    else:  # pragma: no cover - each round can only add a digit to a number
        raise NppctlError("plugin build: the executable's layout did not settle")
    return code + tag + b"".join(boot_lines) + tail


def build_plugin(path: Path, module: str, cache: str = CACHE_DIR) -> Path:
    """Write one executable (mode 0755) at path, atomically."""
    data = plugin_script(path.name, module, cache=cache)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.unlink(missing_ok=True)  # never followed: a link planted there is removed, not written through
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o755)
    with os.fdopen(fd, "wb") as f:
        f.write(data)
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
