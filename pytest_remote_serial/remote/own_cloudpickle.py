"""The plugin's own cloudpickle on a target: the host's version, under a private name.

What the plugin's own machinery needs there must be exactly the cloudpickle that dumped it,
whatever the image has: a source capsule names cloudpickle's reconstructors, ``rebuild`` sets
state with cloudpickle's ``_function_setstate``/``_class_setstate``, and a result plain pickle
refuses goes back through cloudpickle. So the host ships a plain copy of its own cloudpickle
package inside this package (``host/bundle.py``: ``_cloudpickle`` beside this module), and the
plugin's loads and dumps use that copy, while user code in any call imports the ``cloudpickle``
the target has: the image's, or the host's injected one (docs/architecture.md, "What a call
imports"). On the host, which has no private copy, the host's own cloudpickle is that copy.

Both ends import this module: the host builds the copy under ``PRIVATE`` and reads its names
back in results.
"""

from __future__ import annotations

import sys

PRIVATE = "_cloudpickle"  # the copy's name inside this package
_PUBLIC = "cloudpickle"
# What a payload of the plugin's own may name in cloudpickle and have resolved in the private
# copy: the reconstructors (private names) and the module importers. A payload that names
# cloudpickle's public API (a user function's global ``cloudpickle.dumps``) gets the target's.
_IMPORTERS = frozenset(("subimport", "dynamic_subimport"))
_FOUND: list = []  # [the private package's name, or None where there is no copy], once looked up


def _private_package():
    if not _FOUND:
        import importlib.util

        name = "%s.%s" % (__package__, PRIVATE)
        try:
            _FOUND.append(name if importlib.util.find_spec(name) is not None else None)
        except (ImportError, ValueError):
            _FOUND.append(None)
    return _FOUND[0]


def private_name(module, name=None):
    """Where the plugin's own loads find ``module.name`` of a payload it made: a cloudpickle
    reconstructor in the private copy; anything else where it is."""
    if module != _PUBLIC and not module.startswith(_PUBLIC + "."):
        return module
    if name is not None and not name.startswith("_") and name not in _IMPORTERS:
        return module
    package = _private_package()
    return module if package is None else package + module[len(_PUBLIC):]


def cloudpickle():
    """The private copy's ``cloudpickle.cloudpickle`` module (the host's own, on the host),
    imported so that it works on PyPy 8 too (``compat.import_pickler_module``)."""
    from .compat import import_pickler_module

    return import_pickler_module(private_name(_PUBLIC + ".cloudpickle"))


def trackers():
    """cloudpickle's class trackers here: the private copy's (capsules, results) and the
    target's own cloudpickle's (payloads of the cloudpickle serializers), those imported."""
    found = []
    for module in {private_name(_PUBLIC + ".cloudpickle"), _PUBLIC + ".cloudpickle"}:
        tracker = getattr(sys.modules.get(module), "_DYNAMIC_CLASS_TRACKER_BY_CLASS", None)
        if tracker:
            found.append(tracker)
    return found
