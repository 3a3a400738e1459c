"""The code version a run records: commit plus a hash of uncommitted changes to the package sources only."""
import subprocess

from experiments.replay.code_version import code_version


def _git(repo, *args):
    subprocess.run(["git", "-C", str(repo), *args], check=True, capture_output=True)


def test_changes_to_package_sources_change_the_version_and_others_do_not(tmp_path):
    (tmp_path / "morph").mkdir()
    (tmp_path / "morph" / "policy.py").write_text("A = 1\n")
    (tmp_path / "README.md").write_text("readme\n")
    _git(tmp_path, "init", "-q")
    _git(tmp_path, "-c", "user.email=t@t", "-c", "user.name=t", "add", "-A")
    _git(tmp_path, "-c", "user.email=t@t", "-c", "user.name=t", "commit", "-qm", "first")
    clean = code_version(tmp_path)
    assert len(clean.commit) == 40 and clean.changes == ""
    (tmp_path / "README.md").write_text("another readme\n")
    assert code_version(tmp_path) == clean                       # not a package source
    (tmp_path / "morph" / "policy.py").write_text("A = 2\n")
    edited = code_version(tmp_path)
    assert edited.commit == clean.commit and edited.changes != ""
    (tmp_path / "configs").mkdir()
    (tmp_path / "configs" / "new.yaml").write_text("a: 1\n")       # an untracked config counts too
    assert code_version(tmp_path).changes not in ("", edited.changes)


def test_outside_a_checkout_every_source_file_is_hashed(tmp_path):
    (tmp_path / "swiftllm").mkdir()
    (tmp_path / "swiftllm" / "engine.py").write_text("x = 1\n")
    first = code_version(tmp_path)
    (tmp_path / "swiftllm" / "engine.py").write_text("x = 2\n")
    assert first.commit == "none" and code_version(tmp_path).changes != first.changes
