"""Seed 002, as its write-up describes it: a memory-type decorator whose wrapper reads a
module-level thread-local, and a registry that decorates library functions at run time.

Decorated at import time, a function is a module attribute and pickles by reference. The
registry's wrappers are not (their qualname points at the library's undecorated function),
so cloudpickle ships them by value, together with the globals their code uses: among them
``_thread_gpu_contexts``, and "cannot pickle '_thread._local' object".
"""

import functools
import statistics
import threading

_thread_gpu_contexts = threading.local()


def cupy_func(func):
    @functools.wraps(func)
    def wrapper(*args, **kwargs):
        stream = getattr(_thread_gpu_contexts, "stream", None)  # the per-thread GPU context
        result = func(*args, **kwargs)
        return result if stream is None else (stream, result)

    wrapper.input_memory_type = "cupy"
    wrapper.output_memory_type = "cupy"
    return wrapper


@cupy_func
def sobel(values):
    """A manual function: decorated at import time, in a clean environment."""
    return [b - a for a, b in zip(values, values[1:])]


def minimal_decoration(func):
    """What the write-up's working commit did: attributes only, no wrapper, no thread-local."""
    func.input_memory_type = "cupy"
    func.output_memory_type = "cupy"
    return func


def discover(library_functions, decorate=cupy_func):
    """The registry scan, run while the app's worker thread holds a live GPU context."""
    registry = {}

    def scan():
        _thread_gpu_contexts.stream = "stream-0"
        for func in library_functions:
            registry[func.__name__] = decorate(func)

    worker = threading.Thread(target=scan, name="tui-worker")
    worker.start()
    worker.join()
    return registry


LIBRARY = [statistics.fmean, statistics.median]
