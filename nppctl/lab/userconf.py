"""A student's own CNI config (`install`/`up --conf FILE`), rendered once per node.

FILE is a `.conf`, `.conflist` or `.json`, plain JSON or, with a `.j2` suffix, a Jinja2 template
(StrictUndefined: a variable misspelt is one line naming it). It is installed under its own name minus
`.j2` (`09-nppnet.conf.j2` -> `/etc/cni/net.d/09-nppnet.conf`). A template sees the fields of
NodeContext: node, node_index (0 the control plane, 1.. the workers, in node order), subnet,
gateway, subnet_network/subnet_node (the course's split of a /24: "10.244" and "1" for
10.244.1.0/24), pod_cidr, bridge, mtu (the node's eth0 MTU, or None) and cni_version.

cni_version: a plain file's own cniVersion; a template's is DEFAULT_CNI_VERSION ("0.3.1", the
course's: a template cannot say its own before it is rendered), so `"cniVersion": "{{ cni_version }}"`
gives 0.3.1.

A plain file holding the course's keys (`subnet_network`, `subnet_node`: at the top of a .conf, or in
a conflist's plugin entry) gets them filled per node with no template, and a note says so. When a
node's subnet is not a /24 there is no such split: a plain file with the keys, or a template using
them, is refused for that node (a template using only `subnet` is not).

Every node's render is checked before anything is written to any node (render_nodes): JSON object,
`cniVersion` and `name`, a `type` equal to the plugin's file name (a conflist: one of its plugins);
a .conf holds one plugin (libcni reads it by its extension), a .conflist a `plugins` list.

Interface: load(path, rivals=()) -> UserConf; NodeContext.of(...); UserConf.render(ctx, plugin_type)
-> RenderedConf; render_nodes(conf, contexts, plugin_type) -> dict[node, RenderedConf];
sample_contexts(nodes, pod_cidr) and check(path, plugin_type, pod_cidr, nodes) (up's preflight).
Renders nothing: the notes are returned (UserConf.notes, RenderedConf.notes) for the face to print.
"""

from __future__ import annotations

import ipaddress
import json
import re
from dataclasses import asdict, dataclass, replace
from pathlib import Path

from nppctl.errors import NppctlError

DEFAULT_CNI_VERSION = "0.3.1"
COURSE_KEYS = ("subnet_network", "subnet_node")
TEMPLATE_SUFFIX = ".j2"
CONF_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*\.(conf|conflist|json)$")
MAX_BYTES = 1 << 20
SAMPLE_MTU = 1500  # a sample render's eth0 MTU (up's preflight: no node yet)


@dataclass(frozen=True)
class NodeContext:
    """One node's template variables (its fields, as named)."""

    node: str  # the node's container name
    node_index: int  # 0 the control plane, 1.. the workers, in node order
    subnet: str  # the node's pod subnet, e.g. 10.244.1.0/24
    gateway: str  # its first host (cni0's address), e.g. 10.244.1.1
    subnet_network: str | None  # the course's split of a /24: "10.244" (None: the subnet is no /24)
    subnet_node: str | None  # "1"
    pod_cidr: str  # the cluster's pod network, e.g. 10.244.0.0/16
    bridge: str = "cni0"
    mtu: int | None = None  # the node's eth0 MTU
    cni_version: str = DEFAULT_CNI_VERSION

    @classmethod
    def of(cls, node: str, node_index: int, subnet: str, *, pod_cidr: str, bridge: str = "cni0",
           mtu: int | None = None, cni_version: str = DEFAULT_CNI_VERSION) -> NodeContext:
        net = ipaddress.ip_network(subnet)
        split = course_split(subnet)
        return cls(node, node_index, str(net), str(next(net.hosts())), split[0] if split else None,
                   split[1] if split else None, pod_cidr, bridge, mtu, cni_version)

    def variables(self) -> dict:
        """The template's variables: the fields, minus the course's split where there is none (so a
        template using it fails as undefined, and is refused with the reason)."""
        found = asdict(self)
        return {k: v for k, v in found.items() if not (k in COURSE_KEYS and v is None)}


@dataclass(frozen=True)
class RenderedConf:
    """FILE rendered for one node: what install writes to /etc/cni/net.d/<name>."""

    node: str
    name: str
    data: bytes
    types: tuple[str, ...]  # the plugin types it runs, in order
    notes: tuple[str, ...] = ()


@dataclass(frozen=True)
class UserConf:
    path: Path
    name: str  # the installed file name (the file's own, minus .j2)
    text: str
    template: bool
    cni_version: str  # the `cni_version` variable (module docstring)
    notes: tuple[str, ...] = ()  # about the file itself (its name's order, no per-node value)

    @property
    def source(self) -> str:
        """The user's file name, as status reports it."""
        return self.path.name

    @property
    def conflist(self) -> bool:
        return self.name.endswith(".conflist")

    def render(self, ctx: NodeContext, plugin_type: str) -> RenderedConf:
        """This node's file, checked (module docstring); NppctlError naming the node otherwise."""
        ctx = replace(ctx, cni_version=self.cni_version)
        notes: tuple[str, ...] = ()
        if self.template:
            text = self._render_template(ctx)
        else:
            text, filled = self._fill_course_keys(ctx)
            if filled:
                notes = (f"{self.source} holds the course's keys ({', '.join(COURSE_KEYS)}): filled per node "
                         "from its pod subnet (a plain file needs no template for them)",)
        conf = self._parse(text, ctx.node)
        types = self._check(conf, ctx.node, plugin_type)
        return RenderedConf(ctx.node, self.name, text.encode(), types, notes)

    def _where(self, node: str) -> str:
        return f"--conf {self.source}, node {node}"

    def _render_template(self, ctx: NodeContext) -> str:
        import jinja2

        try:
            return _template(self.text).render(**ctx.variables())
        except jinja2.UndefinedError as err:
            missing = re.match(r"'(\w+)' is undefined", str(err))
            if missing and missing.group(1) in COURSE_KEYS:
                raise NppctlError(f"{self._where(ctx.node)}: {_no_split(ctx)}") from None
            known = ", ".join(sorted(ctx.variables()))
            raise NppctlError(
                f"{self._where(ctx.node)}{_template_line(err)}: {err}: the variables are {known}"
            ) from None
        except Exception as err:  # noqa: BLE001 - a template can raise anything; one line for any
            raise NppctlError(
                f"{self._where(ctx.node)}{_template_line(err)}: rendering failed: {type(err).__name__}: {err}"
            ) from None

    def _fill_course_keys(self, ctx: NodeContext) -> tuple[str, bool]:
        """A plain file's text for this node: the course's keys filled where it holds them."""
        conf = json.loads(self.text)  # load() parsed it already
        places = [conf, *[p for p in conf.get("plugins") or [] if isinstance(p, dict)]]
        holders = [p for p in places if any(k in p for k in COURSE_KEYS)]
        if not holders:
            return self.text, False
        if ctx.subnet_network is None:
            raise NppctlError(f"{self._where(ctx.node)}: {_no_split(ctx)}")
        for place in holders:
            for key in COURSE_KEYS:
                if key in place:
                    place[key] = getattr(ctx, key)
        return json.dumps(conf, indent=2) + "\n", True

    def _parse(self, text: str, node: str) -> dict:
        try:
            conf = json.loads(text)
        except ValueError as err:
            raise NppctlError(
                f"{self._where(node)}: the rendered file is not JSON ({err}): fix the template"
            ) from None
        if not isinstance(conf, dict):
            raise NppctlError(f"{self._where(node)}: the rendered file is no JSON object: write {{...}}")
        return conf

    def _check(self, conf: dict, node: str, plugin_type: str) -> tuple[str, ...]:
        where = self._where(node)
        for key in ("cniVersion", "name"):
            if not isinstance(conf.get(key), str) or not conf[key]:
                raise NppctlError(f'{where}: no "{key}" (a non-empty string): add it, e.g. '
                                  + ('"cniVersion": "0.3.1"' if key == "cniVersion" else '"name": "mynet"'))
        if self.conflist:
            plugins = conf.get("plugins")
            if not isinstance(plugins, list) or not plugins or not all(isinstance(p, dict) for p in plugins):
                raise NppctlError(f'{where}: a .conflist lists its plugins in "plugins" (a list of objects): '
                                  f"add it, or name a single plugin's config .conf")
            types = tuple(str(p.get("type")) for p in plugins)
        else:
            if "plugins" in conf:
                suffix = Path(self.name).suffix
                raise NppctlError(f'{where}: a {suffix} holds one plugin, this one a "plugins" list: name it '
                                  ".conflist")
            types = (str(conf.get("type")),)
        if plugin_type not in types:
            has = f"has type {types[0]!r}" if len(types) == 1 else f"chains {', '.join(types)}"
            raise NppctlError(f"{where}: it {has}, not {plugin_type!r} (the plugin's file name, its CNI "
                              f'type): set "type": "{plugin_type}" (or rename the plugin file)')
        return types


def _no_split(ctx: NodeContext) -> str:
    return (f"its pod subnet {ctx.subnet} is not a /24, so the course's subnet_network/subnet_node split "
            "does not exist: use /24 pod subnets (e.g. --pod-cidr 10.244.0.0/16, split into /24s)")


def _template(text: str):
    import jinja2

    env = jinja2.Environment(undefined=jinja2.StrictUndefined, keep_trailing_newline=True, autoescape=False)
    return env.from_string(text)


def _template_line(err: BaseException) -> str:
    """' (line N)' of the template where ERR was raised, when the traceback says."""
    tb, line = err.__traceback__, None
    while tb is not None:
        if tb.tb_frame.f_code.co_filename == "<template>":
            line = tb.tb_lineno
        tb = tb.tb_next
    return f" (line {line})" if line else ""


def course_split(subnet: str) -> tuple[str, str] | None:
    """The course's split of a /24: ("10.244", "1") for 10.244.1.0/24; None for any other size."""
    net = ipaddress.ip_network(subnet)
    if net.version != 4 or net.prefixlen != 24:
        return None
    octets = str(net.network_address).split(".")
    return ".".join(octets[:2]), octets[2]


def installed_name(path: Path) -> str:
    """The file name FILE is installed under (its own minus .j2), refused when no runtime would read it."""
    name = path.name[: -len(TEMPLATE_SUFFIX)] if path.name.endswith(TEMPLATE_SUFFIX) else path.name
    if not CONF_NAME.match(name):
        raise NppctlError(
            f"--conf {path.name!r}: a CNI config is named like 09-myplugin.conf: letters, digits, ._- "
            "ending .conf, .conflist or .json (plus .j2 for a Jinja2 template); rename it"
        )
    return name


def load(path: str | Path, rivals: tuple[str, ...] = ()) -> UserConf:
    """FILE read and checked as far as it can be without a node (name, size, JSON or template syntax).
    RIVALS: other conf names that may be in a node (e.g. kindnet's): a note when FILE sorts after one."""
    path = Path(path).expanduser()
    name = installed_name(path)
    if not path.is_file():
        raise NppctlError(f"--conf {path}: no such file: give the path of your plugin's config")
    if path.stat().st_size > MAX_BYTES:
        raise NppctlError(f"--conf {path}: larger than {MAX_BYTES} bytes, no CNI config is: check the file")
    try:
        text = path.read_text()
    except (OSError, UnicodeDecodeError) as err:
        raise NppctlError(f"--conf {path}: cannot be read as text ({err})") from None
    template = path.name.endswith(TEMPLATE_SUFFIX)
    notes = [f"{name} sorts after {r}: containerd reads the lowest name, so where {r} is present yours is "
             f"not used: rename it, e.g. 09-{name.split('-', 1)[-1]}" for r in rivals if name >= r]
    if template:
        import jinja2

        try:
            _template(text)
        except jinja2.TemplateSyntaxError as err:
            raise NppctlError(
                f"--conf {path.name} (line {err.lineno}): Jinja2 syntax: {err.message}: fix the template"
            ) from None
        cni_version = DEFAULT_CNI_VERSION
    else:
        try:
            conf = json.loads(text)
        except ValueError as err:
            raise NppctlError(
                f"--conf {path.name} is not JSON ({err}): fix it, or name it {path.name}.j2 if it is a "
                "Jinja2 template"
            ) from None
        if not isinstance(conf, dict):
            raise NppctlError(f"--conf {path.name} is no JSON object: a CNI config is {{...}}")
        version = conf.get("cniVersion")
        cni_version = version if isinstance(version, str) and version else DEFAULT_CNI_VERSION
        places = [conf, *[p for p in conf.get("plugins") or [] if isinstance(p, dict)]]
        if not any(k in p for p in places for k in COURSE_KEYS):
            notes.append(f"{path.name} is plain JSON with no per-node key: every node gets the same file "
                         f"(name it {path.name}.j2 to render it per node)")
    return UserConf(path, name, text, template, cni_version, tuple(notes))


def render_nodes(conf: UserConf, contexts: list[NodeContext], plugin_type: str) -> dict[str, RenderedConf]:
    """Every node's render, all checked before any is returned (the first failure raises)."""
    return {ctx.node: conf.render(ctx, plugin_type) for ctx in contexts}


def sample_contexts(nodes: list[str], pod_cidr: str, mtu: int | None = SAMPLE_MTU) -> list[NodeContext]:
    """Contexts for NODES (node order) with the pod CIDR split in /24s, as install splits it."""
    from nppctl.lab import subnets

    split = subnets.split(pod_cidr, len(nodes))
    pairs = enumerate(zip(nodes, split, strict=True))
    return [NodeContext.of(n, i, s, pod_cidr=pod_cidr, mtu=mtu) for i, (n, s) in pairs]


def check(path: str | Path, plugin_type: str, pod_cidr: str, nodes: list[str],
          rivals: tuple[str, ...] = ()) -> UserConf:
    """up's preflight: FILE loads and renders, checked, for the nodes to be made (a sample MTU)."""
    conf = load(path, rivals)
    render_nodes(conf, sample_contexts(nodes, pod_cidr), plugin_type)
    return conf
