"""The modules a source payload shipped, in ``sys.modules`` while its call runs (issue 25).

A capsule's functions live in module objects of their modules' names (``rebuild.src_namespace``).
During the call each is registered under its name where that name is free, with stand-ins for
its packages where this target cannot import them, so ``sys.modules[__name__]`` finds it and
plain pickle inside the call finds the module's own classes; a cloudpickle the call uses is told
to carry them by value, as it did while no such module existed here. See docs/architecture.md,
"Serializers and the source capsule".
"""

from __future__ import annotations

import sys

from .rebuild import _SHIPPED


def payload_begins():
    """Only this payload's modules are registered for its call, whatever serializer loads it."""
    del _SHIPPED[:]


class ShippedModules:
    """While the call runs, each module the payload shipped is in ``sys.modules`` under its name
    (where that name is free), and a cloudpickle the call uses carries it by value, as it did
    while no such module existed here (``_ByValueOnImport``). Removed after the call."""

    def __enter__(self):
        self.added, self.hook = [], None
        if not _SHIPPED:
            return self
        first = {}  # the called function's namespace is made first
        for module in _SHIPPED:
            first.setdefault(module.__name__, module)
        self.added = [m for m in first.values() if m.__name__ not in sys.modules]
        if not self.added:
            return self
        for module in self.added:
            sys.modules[module.__name__] = module
        self.added += _parents(self.added)
        cloudpickle = sys.modules.get("cloudpickle")
        if cloudpickle is not None:
            _by_value(cloudpickle, self.added)
        else:
            self.hook = _ByValueOnImport(self.added)
            sys.meta_path.insert(0, self.hook)
        return self

    def __exit__(self, *exc):
        if not self.added:  # nearly every call: nothing was registered
            return
        if self.hook is not None and self.hook in sys.meta_path:
            sys.meta_path.remove(self.hook)
        cloudpickle = sys.modules.get("cloudpickle")
        for module in self.added:
            if sys.modules.get(module.__name__) is module:
                del sys.modules[module.__name__]
            try:
                cloudpickle.unregister_pickle_by_value(module)
            except Exception:  # not imported, or never registered
                pass
        self.added = []


def _parents(modules):
    """Stand-ins for the packages of dotted module names (pickle imports ``a`` to find ``a.b``),
    only where this target cannot import them: a real one is never shadowed."""
    import importlib.util
    import types

    made = []
    for module in modules:
        parts = module.__name__.split(".")
        for i in range(1, len(parts)):
            name = ".".join(parts[:i])
            if name in sys.modules:
                continue
            try:
                found = importlib.util.find_spec(name) is not None
            except (ImportError, ValueError):
                found = False
            if found:
                break
            parent = types.ModuleType(name)
            sys.modules[name] = parent
            made.append(parent)
        parent = sys.modules.get(module.__name__.rpartition(".")[0])
        if parent in made:
            setattr(parent, parts[-1], module)
    return made


def _by_value(cloudpickle, modules):
    register = getattr(cloudpickle, "register_pickle_by_value", None)  # cloudpickle 2.0+
    for module in modules if register is not None else ():
        try:
            register(module)
        except Exception:
            pass


class _ByValueOnImport:
    """A meta path finder for the call's first ``import cloudpickle``: its loader, wrapped, tells
    the module by value about the shipped modules once it is executed."""

    def __init__(self, modules):
        self.modules = modules

    def find_spec(self, name, path=None, target=None):
        if name != "cloudpickle":
            return None
        for finder in sys.meta_path:
            if finder is self or not hasattr(finder, "find_spec"):
                continue
            spec = finder.find_spec(name, path, target)
            if spec is not None:
                if spec.loader is not None:
                    spec.loader = _RegisteringLoader(spec.loader, self.modules)
                return spec
        return None


class _RegisteringLoader:
    def __init__(self, loader, modules):
        self._loader, self._modules = loader, modules
        if hasattr(loader, "exec_module"):
            self.exec_module = self._exec_module
        if hasattr(loader, "load_module"):  # zipimport on 3.9 has only this
            self.load_module = self._load_module

    def __getattr__(self, name):
        return getattr(self._loader, name)

    def create_module(self, spec):
        create = getattr(self._loader, "create_module", None)
        return create(spec) if create is not None else None

    def _exec_module(self, module):
        self._loader.exec_module(module)
        _by_value(module, self._modules)

    def _load_module(self, fullname):
        module = self._loader.load_module(fullname)
        _by_value(module, self._modules)
        return module
