"""Each debootstrap gets its own package cache, seeded from and returned to the shared one."""

from __future__ import annotations

from pytest_remote_serial.host.images import borrow_debs, return_debs


def test_a_build_works_in_its_own_cache_and_returns_only_whole_new_files(tmp_path):
    shared = tmp_path / "shared"
    shared.mkdir()
    (shared / "a_1_amd64.deb").write_bytes(b"a")
    mine, theirs = borrow_debs(shared, tmp_path / "one"), borrow_debs(shared, tmp_path / "two")
    assert (mine / "a_1_amd64.deb").read_bytes() == b"a"
    (mine / "a_1_amd64.deb").unlink()  # what one build moves or removes, the other keeps
    assert (theirs / "a_1_amd64.deb").exists() and (shared / "a_1_amd64.deb").exists()
    (mine / "b_2_amd64.deb").write_bytes(b"b")
    (theirs / "b_2_amd64.deb").write_bytes(b"b")
    return_debs(mine, shared)
    return_debs(theirs, shared)
    assert sorted(p.name for p in shared.iterdir()) == ["a_1_amd64.deb", "b_2_amd64.deb"]
    assert (shared / "b_2_amd64.deb").read_bytes() == b"b"
