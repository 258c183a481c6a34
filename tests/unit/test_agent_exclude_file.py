"""decom._agent.exclude_file: YARN's XML exclude file, read as Hadoop's HostsFileReader reads it and edited under
the lock-file convention (flock on <path>.lock, atomic replacement)."""

from __future__ import annotations

import fcntl
import multiprocessing
import os
import stat
import threading
import time
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from decom._agent.exclude_file import ExcludeFile
from decom._errors import AgentError, ExcludeFileError

SAMPLE = """\
<?xml version="1.0"?>
<!-- decommissions of the data hall -->
<hosts>
  <!-- rack 1 -->
  <host><name>198.18.0.11</name><timeout>3600</timeout></host>
  <host><name>198.18.0.12</name></host>
  <host>
    <name>a.example, b.example,c.example</name>
    <timeout>60</timeout>
    <ticket>OPS-17</ticket>
  </host>
  <maintenance window="sunday" />
</hosts>
"""


def make(tmp_path: Path, text: str = SAMPLE, name: str = "exclude.xml", lock_timeout: float = 30.0) -> ExcludeFile:
    path = tmp_path / name
    path.write_text(text)
    return ExcludeFile(path, lock_timeout=lock_timeout)


def hosts_elements(path: Path) -> list[tuple[str, str | None]]:
    """(name text, timeout text) of each <host> element, in order."""
    return [(h.findtext("name") or "", h.findtext("timeout")) for h in ET.parse(path).getroot().iter("host")]


# -- reading -----------------------------------------------------------------------------------------------------


def test_read_gives_each_host_its_elements_timeout(tmp_path: Path) -> None:
    assert make(tmp_path).read() == {"198.18.0.11": 3600, "198.18.0.12": None, "a.example": 60,
                                     "b.example": 60, "c.example": 60}


def test_read_follows_hadoops_rules(tmp_path: Path) -> None:
    """Names split at commas and new lines (not at a lone space); the last element naming a host wins; <host>
    elements anywhere under the root count; a <host> without a name adds nothing; signs are allowed."""
    ef = make(tmp_path, """<hosts>
      <host><name>h1
         h2 ,, h3</name><timeout>+5</timeout></host>
      <group><host><name>h1</name><timeout>-1</timeout></host></group>
      <host><name>  </name><timeout>7</timeout></host>
      <host><timeout>8</timeout></host>
      <host><name>odd name</name></host>
    </hosts>""")
    assert ef.read() == {"h1": -1, "h2": 5, "h3": 5, "odd name": None}


def test_default_lock_path_is_next_to_the_file(tmp_path: Path) -> None:
    ef = ExcludeFile(str(tmp_path / "x.xml"))
    assert ef.path == tmp_path / "x.xml" and ef.lock_path == tmp_path / "x.xml.lock"
    assert ExcludeFile(tmp_path / "x.xml", tmp_path / "l").lock_path == tmp_path / "l"
    assert not (tmp_path / "x.xml.lock").exists()  # construction touches nothing


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ExcludeFileError, match="does not exist") as e:
        ExcludeFile(tmp_path / "nope.xml").read()
    assert str(tmp_path / "nope.xml") in str(e.value)
    assert isinstance(e.value, AgentError)


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads a file whatever its mode")
def test_unreadable_file(tmp_path: Path) -> None:
    ef = make(tmp_path)
    ef.path.chmod(0)
    try:
        with pytest.raises(ExcludeFileError, match="permission denied"):
            ef.read()
    finally:
        ef.path.chmod(0o644)


def test_plain_host_list_is_refused_with_the_xml_form(tmp_path: Path) -> None:
    ef = make(tmp_path, "198.18.0.11\n198.18.0.12\n")
    before = ef.path.read_bytes()
    with pytest.raises(ExcludeFileError, match="not XML.*plain host-per-line.*XML form.*per-host timeouts"):
        ef.set_timeouts({"198.18.0.11": 0})
    assert ef.path.read_bytes() == before


def test_name_not_ending_in_xml_is_refused(tmp_path: Path) -> None:
    ef = make(tmp_path, name="yarn.exclude")
    with pytest.raises(ExcludeFileError, match=r"not named \*\.xml.*plain host-per-line.*ends in \.xml"):
        ef.read()
    assert make(tmp_path, name="EXCLUDE.XML").read()  # Hadoop compares lower-cased


@pytest.mark.parametrize("text, message", [
    ("<nodes><host><name>h</name></host></nodes>", "root element <nodes>, not <hosts>"),
    ("<hosts><host><name>h</name><timeout>soon</timeout></host></hosts>", "h the <timeout> 'soon', which is not"),
    ("<hosts><host><name>h</name><timeout> 60 </timeout></host></hosts>", "' 60 ', which is not an integer"),
    ("<hosts><host><name>h</name><timeout>2147483648</timeout></host></hosts>", "not an integer"),
    ('<!DOCTYPE hosts [<!ENTITY e SYSTEM "file:///etc/passwd">]><hosts><host><name>&e;</name></host></hosts>',
     "DOCTYPE"),
    ("<hosts><host><name>h</name></host>", "not XML"),
    ("", "not XML"),
    ("<hosts><host><name>h</name><host><name>i</name></host></host></hosts>", "<host> inside a <host>"),
])
def test_malformed_files_are_refused(tmp_path: Path, text: str, message: str) -> None:
    ef = make(tmp_path, text)
    with pytest.raises(ExcludeFileError, match=message):
        ef.read()
    with pytest.raises(ExcludeFileError, match=message), ef.edit():
        pass
    assert ef.path.read_text() == text


def test_too_large_file_is_refused(tmp_path: Path) -> None:
    ef = make(tmp_path)
    ef.max_bytes = 100
    with pytest.raises(ExcludeFileError, match="larger than 100 bytes"):
        ef.read()


# -- set_timeouts ------------------------------------------------------------------------------------------------


def test_set_timeouts_changes_only_the_named_host(tmp_path: Path) -> None:
    ef = make(tmp_path)
    after = ef.set_timeouts({"198.18.0.12": 0})
    assert after == ef.read() == {"198.18.0.11": 3600, "198.18.0.12": 0, "a.example": 60, "b.example": 60,
                                  "c.example": 60}
    text = ef.path.read_text()
    # Untouched elements, comments and other elements keep their form.
    assert text.startswith('<?xml version="1.0" encoding="UTF-8"?>\n<!-- decommissions of the data hall -->\n')
    assert "  <!-- rack 1 -->\n  <host><name>198.18.0.11</name><timeout>3600</timeout></host>\n" in text
    assert "  <host><name>198.18.0.12</name><timeout>0</timeout></host>\n" in text
    assert SAMPLE[SAMPLE.index("  <host>\n"):] in text
    assert text == SAMPLE.replace('<?xml version="1.0"?>', '<?xml version="1.0" encoding="UTF-8"?>').replace(
        "<name>198.18.0.12</name></host>", "<name>198.18.0.12</name><timeout>0</timeout></host>")


def test_set_timeouts_none_removes_the_timeout(tmp_path: Path) -> None:
    ef = make(tmp_path)
    assert ef.set_timeouts({"198.18.0.11": None, "198.18.0.12": None})["198.18.0.11"] is None
    assert "  <host><name>198.18.0.11</name></host>\n" in ef.path.read_text()


def test_one_name_of_a_multi_name_element_is_split_off(tmp_path: Path) -> None:
    ef = make(tmp_path)
    ef.set_timeouts({"b.example": 0})
    assert ef.read() == {"198.18.0.11": 3600, "198.18.0.12": None, "a.example": 60, "c.example": 60,
                         "b.example": 0}
    assert hosts_elements(ef.path)[2:] == [("a.example, c.example", "60"), ("b.example", "0")]
    text = ef.path.read_text()
    # The split-off copy keeps the element's other children and layout, right after the original.
    assert ("    <name>a.example, c.example</name>\n    <timeout>60</timeout>\n    <ticket>OPS-17</ticket>\n  </host>\n"
            "  <host>\n    <name>b.example</name>\n    <timeout>0</timeout>\n    <ticket>OPS-17</ticket>\n"
            "  </host>\n  <maintenance") in text

    ef.set_timeouts({"a.example": None})  # and a host whose timeout goes loses it on its own element
    assert hosts_elements(ef.path)[2:] == [("c.example", "60"), ("a.example", None), ("b.example", "0")]
    assert ef.read() == {"198.18.0.11": 3600, "198.18.0.12": None, "c.example": 60, "a.example": None,
                         "b.example": 0}


def test_all_names_of_an_element_changed_alike_keep_the_element(tmp_path: Path) -> None:
    ef = make(tmp_path)
    ef.set_timeouts({"a.example": 0, "b.example": 0, "c.example": 0})
    assert hosts_elements(ef.path)[2:] == [("a.example, b.example,c.example", "0")]


def test_host_listed_twice_is_changed_where_hadoop_reads_it(tmp_path: Path) -> None:
    ef = make(tmp_path, "<hosts><host><name>h, i</name><timeout>5</timeout></host>"
                        "<host><name>h</name><timeout>9</timeout></host></hosts>")
    assert ef.read() == {"h": 9, "i": 5}
    assert ef.set_timeouts({"h": 0}) == {"h": 0, "i": 5}
    assert hosts_elements(ef.path) == [("i", "5"), ("h", "0")]


def test_host_not_in_file_is_an_error_and_nothing_is_written(tmp_path: Path) -> None:
    ef = make(tmp_path)
    before = ef.path.read_bytes()
    with pytest.raises(ExcludeFileError, match="does not list 198.18.0.99"):
        ef.set_timeouts({"198.18.0.12": 0, "198.18.0.99": 0})
    assert ef.path.read_bytes() == before


@pytest.mark.parametrize("timeout", [-1, 1.5, "0", True])
def test_bad_timeouts_are_refused(tmp_path: Path, timeout: object) -> None:
    ef = make(tmp_path)
    before = ef.path.read_bytes()
    with pytest.raises(ExcludeFileError, match="nothing was written"):
        ef.set_timeouts({"198.18.0.12": timeout})  # type: ignore[dict-item]
    assert ef.path.read_bytes() == before


def test_unchanged_mapping_writes_nothing(tmp_path: Path) -> None:
    ef = make(tmp_path)
    inode = ef.path.stat().st_ino
    assert ef.set_timeouts({"198.18.0.11": 3600}) == ef.read()
    with ef.edit():
        pass
    assert ef.path.stat().st_ino == inode and ef.path.read_text() == SAMPLE


# -- edit ----------------------------------------------------------------------------------------------------------


def test_edit_round_trip_adds_changes_and_removes(tmp_path: Path) -> None:
    ef = make(tmp_path)
    with ef.edit() as hosts:
        assert hosts == ef.read()
        del hosts["198.18.0.11"]
        del hosts["b.example"]
        hosts["198.18.0.12"] = 0
        hosts["198.18.0.13"] = None
        hosts["198.18.0.14"] = 1800
    assert ef.read() == {"198.18.0.12": 0, "a.example": 60, "c.example": 60, "198.18.0.13": None,
                         "198.18.0.14": 1800}
    text = ef.path.read_text()
    assert "198.18.0.11" not in text and "<!-- rack 1 -->" in text and '<maintenance window="sunday" />' in text
    assert text.endswith("  <maintenance window=\"sunday\" />\n  <host><name>198.18.0.13</name></host>\n"
                         "  <host><name>198.18.0.14</name><timeout>1800</timeout></host>\n</hosts>\n")
    with ef.edit() as hosts:
        hosts.clear()
    assert ef.read() == {}
    with ef.edit() as hosts:
        hosts["x"] = 0
    assert ef.read() == {"x": 0}


def test_edit_of_an_empty_hosts_element(tmp_path: Path) -> None:
    ef = make(tmp_path, '<?xml version="1.0"?>\n<hosts/>\n')
    with ef.edit() as hosts:
        hosts["h"] = 0
    assert ef.path.read_text() == ('<?xml version="1.0" encoding="UTF-8"?>\n<hosts>\n'
                                   "  <host><name>h</name><timeout>0</timeout></host>\n</hosts>\n")


def test_an_exception_inside_edit_writes_nothing(tmp_path: Path) -> None:
    ef = make(tmp_path)
    with pytest.raises(RuntimeError, match="boom"), ef.edit() as hosts:
        hosts["198.18.0.12"] = 0
        hosts["new"] = 1
        raise RuntimeError("boom")
    assert ef.path.read_text() == SAMPLE
    assert ef.set_timeouts({"198.18.0.12": 0})["198.18.0.12"] == 0  # and the lock was released


@pytest.mark.parametrize("host", ["two words", "a,b", "", "tab\there"])
def test_edit_refuses_host_names_yarn_would_split(tmp_path: Path, host: str) -> None:
    ef = make(tmp_path)
    with pytest.raises(ExcludeFileError, match="not a host name"), ef.edit() as hosts:
        hosts[host] = 0
    assert ef.path.read_text() == SAMPLE


def test_write_keeps_mode_and_leaves_no_temporary_file(tmp_path: Path) -> None:
    ef = make(tmp_path)
    ef.path.chmod(0o640)
    ef.set_timeouts({"198.18.0.12": 0})
    assert stat.S_IMODE(ef.path.stat().st_mode) == 0o640
    assert sorted(p.name for p in tmp_path.iterdir()) == ["exclude.xml", "exclude.xml.lock"]
    assert stat.S_IMODE(ef.lock_path.stat().st_mode) == 0o644


def test_write_through_a_symlink_replaces_its_target(tmp_path: Path) -> None:
    real = make(tmp_path, name="real.xml").path
    link = tmp_path / "link.xml"
    link.symlink_to(real)
    ExcludeFile(link).set_timeouts({"198.18.0.12": 0})
    assert link.is_symlink() and ExcludeFile(real).read()["198.18.0.12"] == 0


# -- the lock ------------------------------------------------------------------------------------------------------


def _hold_lock(lock_path: Path) -> int:
    fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o644)
    fcntl.flock(fd, fcntl.LOCK_EX)
    return fd


def test_a_holder_of_the_lock_file_keeps_editors_out(tmp_path: Path) -> None:
    ef = make(tmp_path, lock_timeout=0.2)
    fd = _hold_lock(ef.lock_path)
    try:
        before = ef.path.read_bytes()
        t0 = time.monotonic()
        with pytest.raises(ExcludeFileError, match="held the lock file .*exclude.xml.lock"):
            ef.set_timeouts({"198.18.0.12": 0})
        assert 0.2 <= time.monotonic() - t0 < 2
        assert ef.path.read_bytes() == before
        assert ef.read()["198.18.0.12"] is None  # readers take no lock
    finally:
        os.close(fd)
    assert ef.set_timeouts({"198.18.0.12": 0})["198.18.0.12"] == 0


def test_an_editor_waits_for_the_lock_then_sees_the_holders_write(tmp_path: Path) -> None:
    ef = make(tmp_path, lock_timeout=5)
    fd = _hold_lock(ef.lock_path)

    def release_after_writing() -> None:
        time.sleep(0.3)
        text = ef.path.read_text().replace("<timeout>3600</timeout>", "<timeout>7</timeout>")
        ef.path.write_text(text)  # the holder's own edit, under the lock
        os.close(fd)

    holder = threading.Thread(target=release_after_writing)
    holder.start()
    t0 = time.monotonic()
    after = ef.set_timeouts({"198.18.0.12": 0})
    waited = time.monotonic() - t0
    holder.join()
    assert waited >= 0.25
    assert after["198.18.0.11"] == 7 and after["198.18.0.12"] == 0  # re-read under the lock: no lost update


def _edit_many(path: str, worker: int, count: int) -> None:
    ef = ExcludeFile(path, lock_timeout=30)
    for i in range(count):
        with ef.edit() as hosts:
            hosts[f"w{worker}-h{i}"] = i + 1
            counter = hosts["counter"]
            assert counter is not None
            hosts["counter"] = counter + 1


def test_concurrent_editors_lose_no_update(tmp_path: Path) -> None:
    count = 50
    names = [f"w{w}-h{i}" for w in (0, 1) for i in range(count)]
    text = "<hosts>\n" + "".join(f"  <host><name>{n}</name></host>\n" for n in names) + \
        "  <host><name>counter</name><timeout>0</timeout></host>\n</hosts>\n"
    ef = make(tmp_path, text)
    ctx = multiprocessing.get_context("fork")
    workers = [ctx.Process(target=_edit_many, args=(str(ef.path), w, count)) for w in (0, 1)]
    for p in workers:
        p.start()
    for p in workers:
        p.join(30)
    assert [p.exitcode for p in workers] == [0, 0]
    hosts = ef.read()
    assert hosts["counter"] == 2 * count
    assert {n: hosts[n] for n in names} == {f"w{w}-h{i}": i + 1 for w in (0, 1) for i in range(count)}
