"""YARN's XML exclude file (``yarn.resourcemanager.nodes.exclude-path``), read and edited the way Hadoop reads it.

The agent finishes a graceful decommission early by giving the DECOMMISSIONING host a per-host
``<timeout>0</timeout>`` and running ``yarn rmadmin -refreshNodes -g``. Operators (and the test lab) edit the same
file, so every edit follows one convention:

- **The lock.** Whoever edits the exclude file holds an exclusive :func:`fcntl.flock` on the lock file (by default
  the exclude path plus ``.lock``, in the same directory, created mode 0644 if missing) for the whole
  read-modify-write. The lock is on a separate file because the exclude file itself is replaced, not rewritten:
  a lock on the old inode would not keep out an editor who opened the new one. From a shell::

      flock /etc/hadoop/conf/yarn.exclude.xml.lock -c 'vi /etc/hadoop/conf/yarn.exclude.xml'

- **Atomic replacement.** The new content goes to a temporary file in the same directory, is fsynced, gets the
  old file's mode (and owner, when allowed), and is renamed over the file; the directory is fsynced. Readers
  that take no lock (the ResourceManager, :meth:`ExcludeFile.read`) see the old file or the new, never half.

How Hadoop's ``HostsFileReader`` reads a file whose name ends in ``.xml`` (and so how this module reads it): every
``<host>`` element under the root; the text of its first ``<name>`` lists one or more hosts, separated by commas
or new lines (``StringUtils.getTrimmedStrings``: a space alone does not separate); its first ``<timeout>``, if
any, is an integer number of seconds (``Integer.parseInt``: digits with an optional sign, no spaces) that every
host of the element gets; no ``<timeout>`` means no per-host timeout (the ``-g`` value, else the RM's default,
applies). A host listed twice gets the value of its last element. Hadoop's reader also refuses a DOCTYPE.

Edits change as little as they can: untouched elements, comments, other elements and their whitespace stay as
they were; a host whose timeout changes while the other names of its element don't is split off into a copy of
that element placed right after it.
"""

from __future__ import annotations

import copy
import errno
import fcntl
import os
import re
import stat
import tempfile
import time
import xml.etree.ElementTree as ET
from collections.abc import Iterator, Mapping
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from xml.parsers import expat

from .._errors import ExcludeFileError

__all__ = ["ExcludeFile"]

_INT_MIN, _INT_MAX = -(2**31), 2**31 - 1  # Java's int: what Integer.parseInt accepts
_TIMEOUT = re.compile(r"[+-]?[0-9]+")
_NAME_SEPARATOR = re.compile(r"\s*[,\n]\s*", re.ASCII)  # Hadoop's StringUtils.getTrimmedStrings
_HOST = re.compile(r"[^\s,]+")
_XML_FORM = "<hosts><host><name>HOST</name><timeout>SECONDS</timeout></host>...</hosts>"


class _NoDoctype(Exception):
    """Raised from the expat handler to stop at a DOCTYPE (before any entity is declared or expanded)."""


@dataclass
class _Entry:
    """One ``<host>`` element: its hosts (in order, as written) and its timeout (None: no ``<timeout>``)."""

    element: ET.Element
    names: list[str]
    timeout: int | None


@dataclass
class _Document:
    """A parsed exclude file: the root element, and the comments/processing instructions around it."""

    root: ET.Element
    before: list[str]
    after: list[str]

    def serialize(self) -> bytes:
        parts = ['<?xml version="1.0" encoding="UTF-8"?>\n']
        parts += [item + "\n" for item in self.before]
        parts.append(ET.tostring(self.root, encoding="unicode") + "\n")
        parts += [item + "\n" for item in self.after]
        return "".join(parts).encode("utf-8")


class ExcludeFile:
    """YARN's XML exclude file, edited safely next to others who edit it.

    ``path`` is the exclude file (its name must end in ``.xml``, or YARN reads it as a plain host list without
    timeouts); ``lock_path`` the lock file every editor flocks (default: ``path`` + ``.lock``); ``lock_timeout``
    how many seconds an edit waits for another editor's lock before it gives up with :class:`ExcludeFileError`.
    Construction touches no file. An instance may be shared by threads; edits are not re-entrant (an edit inside
    an edit waits for its own lock until ``lock_timeout``).
    """

    #: a file larger than this is refused (a real exclude file has a few KB).
    max_bytes: int = 16 * 1024 * 1024

    def __init__(self, path: str | os.PathLike[str], lock_path: str | os.PathLike[str] | None = None, *,
                 lock_timeout: float = 30.0) -> None:
        self.path = Path(os.fspath(path))
        self.lock_path = Path(os.fspath(lock_path)) if lock_path is not None else Path(os.fspath(path) + ".lock")
        self.lock_timeout = lock_timeout

    def __repr__(self) -> str:
        return f"ExcludeFile({str(self.path)!r}, lock_path={str(self.lock_path)!r})"

    # -- reading -------------------------------------------------------------------------------------------------

    def read(self) -> dict[str, int | None]:
        """host -> per-host timeout in seconds (None: the element has no ``<timeout>``), as YARN reads the file.

        Takes no lock (editors replace the file atomically). Raises :class:`ExcludeFileError` saying what is
        wrong and what to fix: the file is missing, unreadable, too large, not named ``*.xml``, not XML, has a
        DOCTYPE, its root is not ``<hosts>``, or a ``<timeout>`` is not an integer.
        """
        return _mapping(self._entries(self._load().root))

    # -- editing -------------------------------------------------------------------------------------------------

    @contextmanager
    def edit(self) -> Iterator[dict[str, int | None]]:
        """Under the lock, re-read the file and yield its host -> timeout mapping to change in place.

        On normal exit, if the mapping changed, the file is rewritten atomically: hosts added get a new
        ``<host>`` element at the end; hosts removed are taken out of their elements (an element left without
        hosts goes); a changed timeout is set or removed on the host's element, split off into a copy of the
        element when the element lists other hosts too. Unchanged elements keep their form. An exception inside
        the block writes nothing. A new host must be a name without spaces or commas; a timeout None or an int
        in Java's int range (negative ones too, as Hadoop's reader takes them). Not re-entrant.
        """
        with self._locked():
            document = self._load()
            entries = self._entries(document.root)
            before = _mapping(entries)
            hosts = dict(before)
            yield hosts
            if hosts == before:
                return
            self._check_new(before, hosts)
            _apply(document.root, entries, before, hosts)
            if _mapping(self._entries(document.root)) != hosts:  # a bug here must not reach YARN
                raise ExcludeFileError(f"internal error: the edited {self.path} would not read back as the "
                                       "mapping asked for; nothing was written (please report this)")
            self._write(document.serialize())

    def set_timeouts(self, timeouts: Mapping[str, int | None]) -> dict[str, int | None]:
        """Set (int seconds, >= 0) or remove (None) the per-host timeout of hosts already in the file, in one
        locked read-modify-write, and return the file's mapping after it.

        Never adds or removes a host: a host the file does not list, or a negative or non-integer timeout,
        raises :class:`ExcludeFileError` and nothing is written.
        """
        wanted = dict(timeouts)
        for host, timeout in wanted.items():
            if timeout is not None and (_not_int(timeout) or timeout < 0):
                raise ExcludeFileError(f"timeout {timeout!r} for {host} is not a whole number of seconds >= 0 "
                                       f"(or None for no per-host timeout); nothing was written to {self.path}")
        with self.edit() as hosts:
            missing = sorted(h for h in wanted if h not in hosts)
            if missing:
                raise ExcludeFileError(
                    f"{self.path} does not list {', '.join(missing)}: the agent only changes the timeout of hosts "
                    "already being decommissioned through this file (an operator may have just recommissioned "
                    "them); nothing was written")
            hosts.update(wanted)
            after = dict(hosts)
        return after

    # -- internals -----------------------------------------------------------------------------------------------

    @contextmanager
    def _locked(self) -> Iterator[None]:
        """Hold the exclusive flock on the lock file (created mode 0644 if missing) for the block."""
        try:
            try:
                fd = os.open(self.lock_path, os.O_RDONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o644)
                os.fchmod(fd, 0o644)  # whatever the umask: other editors (other users) must be able to open it
            except FileExistsError:
                fd = os.open(self.lock_path, os.O_RDONLY | os.O_CLOEXEC)  # flock needs no write access
        except OSError as e:
            raise ExcludeFileError(
                f"can't open the lock file {self.lock_path} ({e.strerror}): editors of {self.path} lock it; "
                "create it (mode 0644) or give the agent's user access to its directory") from e
        try:
            deadline = time.monotonic() + self.lock_timeout
            pause = 0.005
            while True:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except OSError as e:
                    if e.errno not in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                        raise ExcludeFileError(f"can't lock {self.lock_path}: {e.strerror}") from e
                if time.monotonic() >= deadline:
                    raise ExcludeFileError(
                        f"another editor of {self.path} has held the lock file {self.lock_path} for more than "
                        f"{self.lock_timeout:g} s: find it with `fuser -v {self.lock_path}` (an editor left open?)")
                time.sleep(pause)
                pause = min(pause * 2, 0.1)
            try:
                yield
            finally:
                fcntl.flock(fd, fcntl.LOCK_UN)
        finally:
            os.close(fd)

    def _load(self) -> _Document:
        if not self.path.name.lower().endswith(".xml"):
            raise ExcludeFileError(
                f"the exclude file {self.path} is not named *.xml, so YARN reads it as a plain host-per-line list, "
                "which can't carry per-host timeouts; the agent needs the XML form (it finishes decommissions "
                f"with a per-host timeout): write it as {_XML_FORM} in a file whose name ends in .xml and set "
                "yarn.resourcemanager.nodes.exclude-path to it")
        try:
            with open(self.path, "rb") as f:
                data = f.read(self.max_bytes + 1)
        except FileNotFoundError:
            raise ExcludeFileError(
                f"the exclude file {self.path} does not exist: create it ({_XML_FORM}, or <hosts/> for none) "
                "or point the agent at yarn.resourcemanager.nodes.exclude-path") from None
        except PermissionError:
            raise ExcludeFileError(
                f"can't read the exclude file {self.path}: permission denied; give the agent's user read access "
                "(and write access to its directory, where edits replace it)") from None
        except IsADirectoryError:
            raise ExcludeFileError(f"the exclude file {self.path} is a directory, not a file") from None
        except OSError as e:
            raise ExcludeFileError(f"can't read the exclude file {self.path}: {e.strerror}") from e
        if len(data) > self.max_bytes:
            raise ExcludeFileError(f"the exclude file {self.path} is larger than {self.max_bytes} bytes: that is "
                                   "not an exclude file (point the agent at the right one, or trim it)")
        return self._parse(data)

    def _parse(self, data: bytes) -> _Document:
        """Parse with expat into an ElementTree, keeping comments and processing instructions (those outside
        the root too); refuse a DOCTYPE, as Hadoop's reader does (so no entity is ever declared or expanded)."""
        builder = ET.TreeBuilder(insert_comments=True, insert_pis=True)
        before: list[str] = []
        after: list[str] = []
        depth = 0
        seen_root = False

        def start(tag: str, attrs: dict[str, str]) -> None:
            nonlocal depth, seen_root
            depth += 1
            seen_root = True
            builder.start(tag, attrs)

        def end(tag: str) -> None:
            nonlocal depth
            depth -= 1
            builder.end(tag)

        def data_(text: str) -> None:
            if depth:
                builder.data(text)

        def comment(text: str) -> None:
            if depth:
                builder.comment(text)
            else:
                (after if seen_root else before).append(f"<!--{text}-->")

        def pi(target: str, text: str) -> None:
            if depth:
                builder.pi(target, text)
            else:
                (after if seen_root else before).append(f"<?{target} {text}?>" if text else f"<?{target}?>")

        def doctype(*_: object) -> None:
            raise _NoDoctype

        parser = expat.ParserCreate()
        parser.buffer_text = True
        parser.StartElementHandler = start
        parser.EndElementHandler = end
        parser.CharacterDataHandler = data_
        parser.CommentHandler = comment
        parser.ProcessingInstructionHandler = pi
        parser.StartDoctypeDeclHandler = doctype
        try:
            parser.Parse(data, True)
        except _NoDoctype:
            raise ExcludeFileError(f"the exclude file {self.path} has a <!DOCTYPE>, which YARN's reader refuses: "
                                   "remove it") from None
        except expat.ExpatError as e:
            plain = not data.lstrip().startswith(b"<")
            raise ExcludeFileError(
                f"the exclude file {self.path} is not XML ({expat.ErrorString(e.code)} at line {e.lineno}, column "
                f"{e.offset + 1})" + ("; it looks like a plain host-per-line list" if plain else "")
                + f": the agent needs YARN's XML form, {_XML_FORM}, because per-host timeouts need it (and the "
                "file name must end in .xml, as it does, for YARN to read it so)") from None
        root = builder.close()
        if root.tag != "hosts":
            raise ExcludeFileError(f"the exclude file {self.path} has root element <{root.tag}>, not <hosts>: "
                                   f"YARN's XML form is {_XML_FORM}")
        return _Document(root, before, after)

    def _entries(self, root: ET.Element) -> list[_Entry]:
        """The ``<host>`` elements under ``root``, in document order, as Hadoop's reader sees them."""
        entries = []
        for element in root.iter("host"):
            if any(inner is not element for inner in element.iter("host")):
                raise ExcludeFileError(f"the exclude file {self.path} has a <host> inside a <host>: flatten it")
            name = element.find(".//name")
            names = _split_names(_text(name)) if name is not None else []
            timeout_element = element.find(".//timeout")
            timeout = None
            if timeout_element is not None:
                text = _text(timeout_element)
                value = int(text) if _TIMEOUT.fullmatch(text) else None
                if value is None or not _INT_MIN <= value <= _INT_MAX:
                    raise ExcludeFileError(
                        f"the exclude file {self.path} gives {', '.join(names) or 'a <host> without a name'} "
                        f"the <timeout> {text!r}, which is not an integer number of seconds (YARN's reader takes "
                        "digits with an optional sign, no spaces, and fails on anything else): fix or remove it")
                timeout = value
            entries.append(_Entry(element, names, timeout))
        return entries

    def _check_new(self, before: Mapping[str, int | None], after: Mapping[str, int | None]) -> None:
        """Refuse what YARN would misread: new host names with separators, timeouts that are not Java ints."""
        for host, timeout in after.items():
            if host not in before and not (isinstance(host, str) and _HOST.fullmatch(host) and host.isprintable()):
                raise ExcludeFileError(f"{host!r} is not a host name (no spaces, commas or control characters); "
                                       f"nothing was written to {self.path}")
            if (host not in before or timeout != before[host]) and timeout is not None and (
                    _not_int(timeout) or not _INT_MIN <= timeout <= _INT_MAX):
                raise ExcludeFileError(f"timeout {timeout!r} for {host} is not None or an integer number of "
                                       f"seconds YARN can read; nothing was written to {self.path}")

    def _write(self, data: bytes) -> None:
        """Replace the file atomically (see the module docstring), keeping its mode and, when allowed, owner.

        A symbolic link is followed: its target is replaced, the link stays."""
        target = Path(os.path.realpath(self.path))
        try:
            st = os.stat(target)
            fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
        except OSError as e:
            raise ExcludeFileError(f"can't write a new {self.path} ({e.strerror}): the agent needs write access to "
                                   f"{target.parent}, where it replaces the file atomically") from e
        try:
            try:
                with os.fdopen(fd, "wb") as f:
                    f.write(data)
                    f.flush()
                    os.fchmod(f.fileno(), stat.S_IMODE(st.st_mode))
                    with suppress(PermissionError):
                        os.fchown(f.fileno(), st.st_uid, st.st_gid)
                    os.fsync(f.fileno())
                os.replace(tmp, target)
            except BaseException:
                with suppress(OSError):
                    os.unlink(tmp)
                raise
            directory = os.open(target.parent, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
            try:
                os.fsync(directory)
            finally:
                os.close(directory)
        except OSError as e:
            raise ExcludeFileError(f"can't write {self.path}: {e.strerror}") from e


# -- the tree edits ----------------------------------------------------------------------------------------------


def _apply(root: ET.Element, entries: list[_Entry], before: Mapping[str, int | None],
           after: Mapping[str, int | None]) -> None:
    """Change the tree so that it reads as ``after`` (it reads as ``before`` now), changing as little as it can."""
    changed = {h for h in before if h not in after or after[h] != before[h]}
    home = {name: i for i, entry in enumerate(entries) for name in entry.names}  # last element wins in Hadoop
    parents = {child: parent for parent in root.iter() for child in parent}
    for i, entry in enumerate(entries):
        if not changed.intersection(entry.names):
            continue
        element, parent = entry.element, parents[entry.element]
        stay = _unique(n for n in entry.names if n not in changed)
        groups: dict[int | None, list[str]] = {}  # new timeout -> hosts of this element that get it
        for name in _unique(entry.names):
            if name in changed and name in after and home[name] == i:
                groups.setdefault(after[name], []).append(name)
        plan = list(groups.items())
        own = plan.pop(0) if plan and not stay else None  # the element itself takes the first new timeout
        copies = [_with(copy.deepcopy(element), names, timeout) for timeout, names in plan]
        if own is not None:
            timeout, names = own
            if names != entry.names:
                _set_names(element, names)
            _set_timeout(element, timeout)
        elif stay:
            _set_names(element, stay)  # the unchanged hosts keep the element and its timeout
        else:
            _remove(parent, element)
            continue
        anchor = element
        for new in copies:
            _insert_after(parent, anchor, new)
            anchor = new
    for host in after:
        if host not in before:
            new = ET.Element("host")
            ET.SubElement(new, "name").text = host
            if after[host] is not None:
                ET.SubElement(new, "timeout").text = str(after[host])
            if len(root):
                _insert_after(root, root[-1], new)
            else:
                if _blank(root.text):
                    root.text, new.tail = "\n  ", "\n"
                root.append(new)


def _with(element: ET.Element, names: list[str], timeout: int | None) -> ET.Element:
    """``element`` (a copy of a host's element) made to list ``names`` with ``timeout``."""
    element.tail = None
    _set_names(element, names)
    _set_timeout(element, timeout)
    return element


def _set_names(host: ET.Element, names: list[str]) -> None:
    name = host.find(".//name")
    assert name is not None  # only elements that list hosts are edited
    _set_text(name, ", ".join(names))


def _set_timeout(host: ET.Element, timeout: int | None) -> None:
    found = host.find(".//timeout")
    if timeout is None:
        parents = {child: parent for parent in host.iter() for child in parent}
        for element in list(host.iter("timeout")):
            _remove(parents[element], element)
    elif found is not None:
        _set_text(found, str(timeout))
    else:
        new = ET.Element("timeout")
        new.text = str(timeout)
        name = next((child for child in host if child.tag == "name"), None)
        anchor = name if name is not None else host[-1]
        _insert_after(host, anchor, new)


def _set_text(element: ET.Element, text: str) -> None:
    for child in list(element):
        element.remove(child)
    element.text = text


def _insert_after(parent: ET.Element, anchor: ET.Element, new: ET.Element) -> None:
    """Insert ``new`` right after ``anchor``, laid out like its neighbours (same line or next line, same indent)."""
    index = _index(parent, anchor)
    gap = parent.text if index == 0 else parent[index - 1].tail  # the whitespace before anchor
    parent.insert(index + 1, new)
    if _blank(anchor.tail) and _blank(gap):
        new.tail, anchor.tail = anchor.tail, gap


def _remove(parent: ET.Element, element: ET.Element) -> None:
    """Remove ``element``, keeping any text after it and leaving the layout of what stays as it was."""
    index = _index(parent, element)
    last = index == len(parent) - 1
    gap = parent.text if index == 0 else parent[index - 1].tail
    parent.remove(element)
    if not _blank(element.tail):
        gap = (gap or "") + (element.tail or "")
    elif last and _blank(gap):
        gap = element.tail  # the closing tag's indent
    else:
        return
    if index == 0:
        parent.text = gap
    else:
        parent[index - 1].tail = gap


# -- small helpers -----------------------------------------------------------------------------------------------


def _mapping(entries: list[_Entry]) -> dict[str, int | None]:
    return {name: entry.timeout for entry in entries for name in entry.names}


def _text(element: ET.Element) -> str:
    """The element's text content, as DOM's getTextContent (comments and processing instructions left out)."""
    return "".join(element.itertext())


def _split_names(text: str) -> list[str]:
    """Hadoop's ``StringUtils.getTrimmedStrings``: trim, split at commas and new lines; empty names dropped."""
    text = _java_trim(text)
    return [name for name in _NAME_SEPARATOR.split(text) if name] if text else []


def _java_trim(text: str) -> str:
    start, end = 0, len(text)
    while start < end and text[start] <= " ":
        start += 1
    while end > start and text[end - 1] <= " ":
        end -= 1
    return text[start:end]


def _unique(names: Iterator[str] | list[str]) -> list[str]:
    return list(dict.fromkeys(names))


def _index(parent: ET.Element, child: ET.Element) -> int:
    return next(i for i, c in enumerate(parent) if c is child)


def _blank(text: str | None) -> bool:
    return text is None or not text.strip()


def _not_int(value: object) -> bool:
    return isinstance(value, bool) or not isinstance(value, int)
