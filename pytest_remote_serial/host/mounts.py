"""Which host folders a ``paths`` entry may give a target (docs/architecture.md, "The trust
boundary"). An entry is mounted into the container (or put on ``sys.path``): one that resolves
outside the project, or to a system folder (``/``, ``/etc``, ``/var/run`` and its sockets, a
symlink to either), would show an untrusted target the host's own files. Such an entry is a
usage error unless the target says ``allow_outside_paths = true``.
"""

from __future__ import annotations

from pathlib import Path

ALLOW_KEY = "allow_outside_paths"
# Folders never mounted, and those whose whole tree is the system's.
_SYSTEM = {Path(p) for p in ("/", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/usr", "/var", "/opt", "/srv", "/mnt",
                             "/media", "/home", "/root", "/tmp", "/snap")}
_SYSTEM_TREES = tuple(Path(p) for p in ("/etc", "/proc", "/sys", "/dev", "/run", "/var/run", "/boot", "/var/lib/docker",
                                        "/usr/lib", "/usr/bin", "/usr/sbin", "/usr/share"))


def _inside(folder: Path, root: Path) -> bool:
    return folder == root or root in folder.parents


def outside_problem(entry: str, base: Path, roots: tuple[Path, ...]) -> str | None:
    """Why ``entry`` (relative to ``base``) may not be given to a target, or None."""
    folder = (base / entry).resolve()
    shown = f"resolves to {folder}" if str(folder) != entry else "is"
    home = Path.home().resolve()
    if folder in _SYSTEM or folder == home or folder in home.parents or any(_inside(folder, t) for t in _SYSTEM_TREES):
        return f"{shown} a system folder"
    if not any(_inside(folder, root.resolve()) for root in roots):
        return f"{shown} a folder outside the project ({', '.join(str(r.resolve()) for r in roots)})"
    return None


def check_outside(paths: tuple[str, ...], base: Path, roots: tuple[Path, ...], where: str, allowed: bool) -> str | None:
    """The usage error's message for the first entry a target may not be given, or None."""
    if allowed:
        return None
    for entry in paths:
        problem = outside_problem(entry, base, roots)
        if problem:
            return (f"{where}: paths entry {entry!r} {problem}; a target is given its `paths` folders (mounted "
                    f"into a container), and this would show it the host's own files. Give a folder inside the "
                    f"project, or set `{ALLOW_KEY} = true` on the target (or at the top level) if you mean it")
    return None
