"""The code version a run records: the committed package sources plus a hash of their uncommitted changes; other
files, committed or not, leave it as it is."""
import dataclasses
import subprocess

from experiments.replay.code_version import CodeVersion, code_version


def _git(repo, *args):
    subprocess.run(["git", "-C", str(repo), *args], check=True, capture_output=True)


def _commit(repo, message):
    _git(repo, "-c", "user.email=t@t", "-c", "user.name=t", "add", "-A")
    _git(repo, "-c", "user.email=t@t", "-c", "user.name=t", "commit", "-qm", message)


def test_changes_to_package_sources_change_the_version_and_others_do_not(tmp_path):
    (tmp_path / "morph").mkdir()
    (tmp_path / "morph" / "policy.py").write_text("A = 1\n")
    (tmp_path / "README.md").write_text("readme\n")
    _git(tmp_path, "init", "-q")
    _commit(tmp_path, "first")
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


def test_a_commit_of_other_files_keeps_the_version_and_a_commit_of_sources_changes_it(tmp_path):
    (tmp_path / "swiftllm").mkdir()
    (tmp_path / "swiftllm" / "engine.py").write_text("x = 1\n")
    _git(tmp_path, "init", "-q")
    _commit(tmp_path, "first")
    first = code_version(tmp_path)
    (tmp_path / "docs.md").write_text("results\n")
    _commit(tmp_path, "docs")
    after_docs = code_version(tmp_path)
    assert after_docs.commit != first.commit and after_docs == first
    (tmp_path / "swiftllm" / "engine.py").write_text("x = 2\n")
    _commit(tmp_path, "code")
    assert code_version(tmp_path) != first and code_version(tmp_path).changes == ""


def test_a_record_in_another_form_is_no_version():
    version = CodeVersion("a" * 40, "sources", "")
    assert CodeVersion.from_record(dataclasses.asdict(version)) == version
    assert CodeVersion.from_record({"commit": "a" * 40, "changes": ""}) is None      # an older run's record
    assert CodeVersion.from_record(None) is None


def test_outside_a_checkout_every_source_file_is_hashed(tmp_path):
    (tmp_path / "swiftllm").mkdir()
    (tmp_path / "swiftllm" / "engine.py").write_text("x = 1\n")
    first = code_version(tmp_path)
    (tmp_path / "swiftllm" / "engine.py").write_text("x = 2\n")
    assert first.commit == "none" and code_version(tmp_path).sources != first.sources
