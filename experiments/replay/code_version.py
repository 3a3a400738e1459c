"""Which code made a run: the package sources of the commit checked out plus a hash of their uncommitted changes.

Two runs of the same config are the same experiment only if this matches too: a saved run is reused only then
(``experiments/replay/saved_runs.py``). The sources are those under ``SOURCE_DIRS``, identified by their git tree
ids, so a commit that changes only other files (docs, results) keeps the version; the commit is recorded beside them
for the reader but not compared. The changes counted are tracked files under ``SOURCE_DIRS`` that differ from the
commit and untracked ones git does not ignore (build outputs such as ``*.so`` are ignored). Outside a git checkout
the commit is ``"none"`` and the sources' hash covers every file under ``SOURCE_DIRS``.
"""
import hashlib
import subprocess
from dataclasses import dataclass, field, fields
from pathlib import Path

REPOSITORY = Path(__file__).resolve().parents[2]
SOURCE_DIRS = ("swiftllm", "morph", "experiments", "csrc", "configs")


@dataclass(frozen=True, slots=True)
class CodeVersion:
    commit: str = field(compare=False)    # the checkout's commit, for the reader
    sources: str        # sha256 (first 16 hex) of the committed SOURCE_DIRS' tree ids
    changes: str        # sha256 (first 16 hex) of the uncommitted changes; "" when there are none

    def __str__(self) -> str:
        return (f"sources {self.sources} at {self.commit[:12]}"
                + (f" + uncommitted changes {self.changes}" if self.changes else ""))

    @staticmethod
    def from_record(record: object) -> "CodeVersion | None":
        """The version a run recorded, ``None`` if it recorded none in this form (an older run)."""
        names = {f.name for f in fields(CodeVersion)}
        if not isinstance(record, dict) or set(record) != names:
            return None
        return CodeVersion(**record)


def code_version(repository: Path = REPOSITORY) -> CodeVersion:
    commit = _git(repository, "rev-parse", "HEAD")
    if commit is None:
        return CodeVersion("none", _digest(_files(repository, sorted(_all_files(repository)))), "")
    trees = "\n".join(f"{folder} {(_git(repository, 'rev-parse', f'HEAD:{folder}') or 'absent').strip()}"
                      for folder in SOURCE_DIRS)
    tracked = _git(repository, "diff", "HEAD", "--binary", "--", *SOURCE_DIRS) or ""
    untracked = (_git(repository, "ls-files", "--others", "--exclude-standard", "-z", "--", *SOURCE_DIRS) or "")
    names = sorted(name for name in untracked.split("\0") if name)
    content = tracked.encode() + _files(repository, names)
    return CodeVersion(commit.strip(), _digest(trees.encode()), _digest(content) if content else "")


def _git(repository: Path, *args: str) -> str | None:
    """Standard output of ``git args`` in ``repository``; ``None`` when it is no git checkout (or git is missing)."""
    try:
        done = subprocess.run(["git", "-C", str(repository), *args], capture_output=True, text=True, check=False)
    except FileNotFoundError:
        return None
    return done.stdout if done.returncode == 0 else None


def _all_files(repository: Path) -> list[str]:
    return [str(path.relative_to(repository)) for folder in SOURCE_DIRS for path in (repository / folder).rglob("*")
            if path.is_file() and "__pycache__" not in path.parts and path.suffix not in (".pyc", ".so")]


def _files(repository: Path, names: list[str]) -> bytes:
    """Each file's name and bytes, in the given order."""
    return b"".join(name.encode() + b"\0" + (repository / name).read_bytes() for name in names)


def _digest(content: bytes) -> str:
    return hashlib.sha256(content).hexdigest()[:16]
