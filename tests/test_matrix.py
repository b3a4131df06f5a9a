"""Matrix files: the lookup order, and errors that name the file, the target and the key."""

from __future__ import annotations

from pathlib import Path

import pytest

from pytest_remote_serial.host.matrix import BUNDLED, MatrixError, load_matrix


def write(tmp_path: Path, text: str) -> Path:
    (tmp_path / "matrix").mkdir(exist_ok=True)
    path = tmp_path / "matrix" / "targets.toml"
    path.write_text(text)
    return path


def test_default_matrix_has_the_design_targets(tmp_path):
    matrix = load_matrix(tmp_path)
    assert matrix.source == str(BUNDLED)
    assert list(matrix.targets) == ["local", "py3.9", "py3.10", "py3.11", "py3.12", "py3.13", "py3.14",
                                    "py3.15", "pypy3.11", "cuda-py3.11"]
    for name in ("py3.10", "py3.12"):  # every minor 3.9-3.15: these two as interpreters (no Docker)
        assert matrix.targets[name].is_interpreter and matrix.targets[name].recipe == name[2:]
        assert not matrix.targets[name].is_trusted and not matrix.targets[name].is_container
    assert matrix.targets["py3.9"].recipe == {"suite": "bullseye", "packages": ["python3", "python3-numpy"]}
    assert matrix.targets["py3.14"].python == "python3.14"
    assert matrix.targets["py3.15"].python == "python3.15"
    assert matrix.targets["py3.15"].recipe == {"suite": "sid", "packages": ["python3.15", "python3-numpy"]}
    pypy = matrix.targets["pypy3.11"]  # another implementation: Debian's PyPy, no numpy there
    assert (pypy.python, pypy.recipe) == ("pypy3", {"suite": "sid", "packages": ["pypy3"]})
    cuda = matrix.targets["cuda-py3.11"]
    assert cuda.gpu and cuda.recipe["suite"] == "bookworm"
    assert any(w.startswith("cupy-cuda12x") for w in cuda.recipe["wheels"])


def test_pyproject_table_wins_over_matrix_folder(tmp_path):
    write(tmp_path, '[targets.a]\nimage = "x"\n')
    (tmp_path / "pyproject.toml").write_text('[tool.pytest_remote_serial.targets.b]\nimage = "y"\n')
    assert list(load_matrix(tmp_path).targets) == ["local", "b"]
    (tmp_path / "pyproject.toml").write_text('[project]\nname = "x"\n')
    assert list(load_matrix(tmp_path).targets) == ["local", "a"]


@pytest.mark.parametrize(("text", "expected"), [
    ('[targets.a]\nimage = "x"\npakages = []\n', "target 'a': unknown key 'pakages'"),
    ('[targets.a]\ngpu = true\n', "target 'a': no recipe; give exactly one of debian, image, dockerfile, interpreter"),
    ('[targets.a]\nimage = "x"\ndockerfile = "D"\n', "target 'a': two recipes (image and dockerfile)"),
    ('[targets.a]\ndebian = { sute = "bookworm" }\n', "key 'debian': unknown key 'sute'; did you mean 'suite'?"),
    ('[targets.a]\ndebian = { packages = [] }\n', "key 'debian.suite' is required"),
    ('[targets.a]\ndebian = { suite = "bookworm", wheels = "cupy" }\n', "key 'debian.wheels' must be a list"),
    ('[targets.local]\nimage = "x"\n', "target 'local' is built in"),
    ('[targets.a]\nimage = "x"\ntransport = "pigeon"\n', "key 'transport' must be one of"),
    ('[targets.a\nimage = "x"\n', "not valid TOML"),
    ('[targets.a]\nimage = "x"\nengine = "gpu-box"\n', "key 'engine' = 'gpu-box' is not an engine URL"),
    ('[targets.a]\nimage = "x"\nengine = "ssh://h"\ncontext = "c"\n', "keys 'engine' and 'context' both"),
    ('[targets.a]\ninterpreter = "3.8"\n', "the agent needs Python 3.9 or newer"),
    ('[targets.a]\ninterpreter = "python"\n', "neither a path nor a version"),
    ('[targets.a]\ninterpreter = "pypy2"\n', "nor a PyPy like \"pypy3\" or \"pypy3.11\""),
    ('[targets.a]\ninterpreter = "pypy3.7"\n', "the agent needs Python 3.9 or newer"),
    ('[targets.a]\ninterpreter = "3.12"\nmemory = "1g"\n', "key 'memory' applies to container targets only"),
    ('[targets.a]\ninterpreter = "3.12"\nimage = "x"\n', "two recipes (image and interpreter)"),
    ('title = "no targets"\n', "unknown key 'title'"),
    ('', "no [targets.<name>] tables"),
    ('[targets.""]\nimage = "x"\n', "target '': a target's name is made of letters, digits"),
    ('[targets."py 3.9"]\nimage = "x"\n', "target 'py 3.9': a target's name is made of"),
    ('[targets."a,b"]\nimage = "x"\n', "target 'a,b': a target's name is made of"),
])
def test_errors_name_file_target_and_key(tmp_path, text, expected):
    path = write(tmp_path, text)
    with pytest.raises(MatrixError) as info:
        load_matrix(tmp_path)
    assert str(path) in str(info.value)
    assert expected in str(info.value)


def test_unknown_target_in_selection_lists_known_ones(tmp_path):
    matrix = load_matrix(tmp_path)
    with pytest.raises(MatrixError, match=r"unknown target\(s\) 'py2.7'.*known: local, py3.9"):
        matrix.select(["py3.11", "py2.7"])


def test_recipe_hash_changes_only_with_the_recipe(tmp_path):
    write(tmp_path, '[targets.a]\ndebian = { suite = "bookworm" }\npids = 64\n')
    first = load_matrix(tmp_path).targets["a"].recipe_hash()
    write(tmp_path, '[targets.a]\ndebian = { suite = "bookworm" }\npids = 99\n')
    assert load_matrix(tmp_path).targets["a"].recipe_hash() == first
    write(tmp_path, '[targets.a]\ndebian = { suite = "bookworm", packages = ["python3", "x"] }\n')
    assert load_matrix(tmp_path).targets["a"].recipe_hash() != first


def test_usage_errors_reach_the_command_line(pytester):
    pytester.makefile(".toml", **{"matrix/targets": '[targets.a]\nimage = "x"\nimage2 = 1\n'})
    pytester.makepyfile("def test_x(remote): pass")
    result = pytester.runpytest_subprocess("--remote-matrix")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*targets.toml: target 'a': unknown key 'image2'*"])
    pytester.makefile(".toml", **{"matrix/targets": '[targets.a]\nimage = "x"\n'})
    result = pytester.runpytest_subprocess("--remote-targets=nope")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*unknown target(s) 'nope'*known: local, a*"])


def test_manylinux_platforms_cover_the_images_glibc():
    from pytest_remote_serial.host.images import BuildFailed, manylinux_platforms

    tags = manylinux_platforms("2.36", "x86_64")
    assert tags[0] == "manylinux_2_36_x86_64" and "manylinux_2_28_x86_64" in tags
    assert {"manylinux2014_x86_64", "manylinux2010_x86_64", "manylinux1_x86_64"} <= set(tags)
    assert "manylinux_2_37_x86_64" not in tags
    with pytest.raises(BuildFailed, match="glibc"):
        manylinux_platforms("", "x86_64")


def test_extends_default_inherits_the_bundled_targets_and_merges_overrides(tmp_path):
    (tmp_path / "src").mkdir()
    (tmp_path / "pyproject.toml").write_text("""
[tool.pytest_remote_serial]
extends = "default"
memory = "1g"

[tool.pytest_remote_serial.targets."py3.9"]
paths = ["src"]
pids = 64
packages = ["python3-toolz"]

[tool.pytest_remote_serial.targets."cuda-py3.11"]
wheels = ["fastrlock"]

[tool.pytest_remote_serial.targets.mine]
image = "python:3.12-slim"
""")
    matrix = load_matrix(tmp_path)
    bundled = load_matrix(tmp_path / "nowhere")
    assert list(matrix.targets) == [*bundled.targets, "mine"]
    py39 = matrix.targets["py3.9"]
    assert py39.recipe == {"suite": "bullseye", "packages": ["python3", "python3-numpy", "python3-toolz"]}
    assert (py39.paths, py39.pids, py39.memory) == (("src",), 64, "1g")
    # An untouched target keeps its recipe, so its image is found by the same hash: no rebuild.
    assert matrix.targets["py3.11"].recipe_hash() == bundled.targets["py3.11"].recipe_hash()
    assert matrix.targets["py3.11"].memory == "1g"  # the top-level default
    assert matrix.targets["cuda-py3.11"].recipe["wheels"][-1] == "fastrlock"
    assert matrix.targets["cuda-py3.11"].gpu
    assert matrix.targets["mine"].recipe == "python:3.12-slim"


@pytest.mark.parametrize(("text", "expected"), [
    ('extends = "default"\n[targets."py3.9"]\npackages = "toolz"\n', "key 'packages' must be a list"),
    ('extends = "mine"\n', "only \"default\" (the bundled targets) can be extended"),
    ('extends = "default"\n[targets."py3.9"]\nsuite = "x"\n', "unknown key 'suite'"),
    ('[targets."py3.9"]\npaths = ["src"]\n', "no recipe; give exactly one of debian, image, dockerfile, "
                                            "interpreter; to change only some keys of the bundled 'py3.9', put "
                                            "extends = \"default\""),
    ('[targets.a]\nimage = "x"\npackages = ["toolz"]\n', "key 'packages' at the target's level adds to an "
                                                        "inherited recipe"),
    ('[targets.a]\nimage = "x"\npaths = ["srcc"]\n', "target 'a': paths entry 'srcc' does not exist"),
    ('paths = ["targets.toml"]\n[targets.a]\nimage = "x"\n', "paths entry 'targets.toml' is a file, not a folder"),
])
def test_extends_and_paths_errors(tmp_path, text, expected):
    write(tmp_path, text)
    with pytest.raises(MatrixError) as info:
        load_matrix(tmp_path)
    assert expected in str(info.value)


@pytest.mark.parametrize("args", [[], ["--remote-matrix"]])
def test_a_bad_paths_entry_is_a_usage_error_naming_it(pytester, args):
    """Not an unavailable target whose skipped tests make a green run."""
    pytester.makepyprojecttoml('[tool.pytest_remote_serial]\nextends = "default"\npaths = ["scr"]\n')
    pytester.makepyfile("def test_x(remote): pass")
    result = pytester.runpytest_subprocess(*args)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*pyproject.toml [[]tool.pytest_remote_serial[]]: paths entry 'scr' does not exist*"])


def test_debootstrap_chooses_its_own_mirror_unless_the_recipe_names_one(tmp_path, monkeypatch):
    from pytest_remote_serial.host.images import debootstrap_command

    monkeypatch.delenv("PYTEST_REMOTE_SERIAL_MIRROR", raising=False)
    plain = debootstrap_command("debootstrap", {"suite": "bookworm"}, ["python3"], tmp_path / "r", tmp_path)
    assert plain[-2:] == ["bookworm", str(tmp_path / "r")]  # no mirror argument: debootstrap's default
    assert not any("://" in part for part in plain)
    named = debootstrap_command("debootstrap", {"suite": "bookworm", "mirror": "http://mirror.example/debian"},
                                ["python3"], tmp_path / "r", tmp_path)
    assert named[-1] == "http://mirror.example/debian"
