"""Short-lived containers nppctl makes (the python3 image build, the python3 probe), and Ctrl-C safety.

Every such container is made by container(client, purpose, image, ...): it is named
nppctl-<purpose>-<pid>-<host>-<random> (pid: the nppctl process; host: 8 hex digits of SHA-1 of this
machine's host name) and removed on every way out of the `with` block, Ctrl-C at any instant included.
Those that are not committed into an image also carry the labels io.nppctl.access.throwaway=<purpose>,
io.nppctl.owner-pid and io.nppctl.owner-host (a committed container's labels would pass into the
image, then into every node made from it: the build container has its name only).

sigint_deferred(): a Ctrl-C (SIGINT) that arrives inside the block is held and raised as
KeyboardInterrupt when the block ends (main thread only), so a Docker call that creates something
and the line that records it are never cut in half: an interrupted create that the engine would
finish after the client gave up cannot happen; the removal at the end of container() is such a block
too. sigint_held() holds it for good (a clean-up after a Ctrl-C that a second one must not stop) and
tells whether one came.

sweep(client): removes this machine's throwaway containers whose nppctl process is gone (`up` and
`down` call it), e.g. after a kill -9. leftovers(client): this process's throwaways still there.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import secrets
import signal
import socket
import threading

LABEL_PURPOSE = "io.nppctl.access.throwaway"
LABEL_OWNER_PID = "io.nppctl.owner-pid"
LABEL_OWNER_HOST = "io.nppctl.owner-host"
PREFIX = "nppctl-"
NAME = re.compile(r"^/?nppctl-(?P<purpose>[a-z]+)-(?P<pid>\d+)-(?P<host>[0-9a-f]{8})-[0-9a-f]{8}$")
_made: list[str] = []  # names of the throwaways this process created (removed or not)


def host_tag() -> str:
    """8 hex digits naming this machine in a throwaway's name."""
    return hashlib.sha1(socket.gethostname().encode()).hexdigest()[:8]


def throwaway_name(purpose: str) -> str:
    return f"{PREFIX}{purpose}-{os.getpid()}-{host_tag()}-{secrets.token_hex(4)}"


def owner_labels(purpose: str) -> dict[str, str]:
    return {LABEL_PURPOSE: purpose, LABEL_OWNER_PID: str(os.getpid()), LABEL_OWNER_HOST: socket.gethostname()}


class _Held:
    got = False


@contextlib.contextmanager
def sigint_held():
    """SIGINT is recorded, not raised, inside the block (main thread; elsewhere a no-op). Yields an
    object whose `got` says whether one came."""
    held = _Held()
    if threading.current_thread() is not threading.main_thread():
        yield held
        return

    def hold(_signum, _frame) -> None:
        held.got = True

    previous = signal.signal(signal.SIGINT, hold)
    try:
        yield held
    finally:
        signal.signal(signal.SIGINT, previous)


@contextlib.contextmanager
def sigint_deferred():
    """A SIGINT inside the block is held, then handed to the handler that was there before when the
    block ends (Python's default: KeyboardInterrupt)."""
    previous = signal.getsignal(signal.SIGINT)
    held = _Held()
    try:
        with sigint_held() as held:
            yield
    finally:  # also when the block raised: the Ctrl-C is what the user asked for
        if held.got and callable(previous):
            previous(signal.SIGINT, None)
        elif held.got and previous == signal.SIG_DFL:
            raise KeyboardInterrupt


def remove(client, name: str) -> bool:
    """Remove container NAME (running or not); True when it is gone."""
    import docker

    try:
        client.api.remove_container(name, force=True, v=True)
    except docker.errors.NotFound:
        return True
    except docker.errors.APIError as err:
        return "already in progress" in str(err)  # another remove of it is under way
    return True


@contextlib.contextmanager
def container(client, purpose: str, image: str, *, labelled: bool = True, fails: str = "", **create):
    """A created (not started) container of IMAGE named for PURPOSE (see the module doc), removed
    when the block ends, however it ends. CREATE: the arguments of client.containers.create; FAILS:
    the start of the NppctlError line when the engine refuses to create it (else its APIError)."""
    import docker

    from nppctl.errors import NppctlError

    name = throwaway_name(purpose)
    if labelled:
        create["labels"] = {**(create.get("labels") or {}), **owner_labels(purpose)}
    try:
        with sigint_deferred():
            _made.append(name)
            try:
                box = client.containers.create(image, name=name, **create)
            except docker.errors.APIError as err:
                if not fails:
                    raise
                raise NppctlError(f"{fails}: {err.explanation or err}") from err
        yield box
    finally:
        with sigint_deferred():  # a Ctrl-C does not stop the removal, and is raised once it is done
            remove(client, name)


def leftovers(client) -> list[str]:
    """Names of this process's throwaways still in the engine (each removed again first)."""
    import docker

    left = []
    for name in _made:
        if remove(client, name):
            continue
        try:
            client.api.inspect_container(name)
            left.append(name)
        except docker.errors.NotFound:
            pass
    return left


def _alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # another user's process
    return True


def strays(client) -> list[str]:
    """Names of this machine's throwaway containers whose nppctl process no longer runs."""
    mine = host_tag()
    found = []
    for row in client.api.containers(all=True, filters={"name": PREFIX}):
        for raw in row.get("Names") or []:
            m = NAME.match(raw)
            if m and m["host"] == mine and not _alive(int(m["pid"])):
                found.append(raw.lstrip("/"))
    return found


def sweep(client) -> list[str]:
    """Remove strays(client); the names removed. Best effort: an engine error removes nothing."""
    import docker

    try:
        return [name for name in strays(client) if remove(client, name)]
    except docker.errors.APIError:
        return []
