"""A module with a dotted name: pickle inside the call imports its package to find it."""

import pickle


class Entry:
    def __init__(self, value):
        self.value = value


def pickles_own_instance():
    return pickle.loads(pickle.dumps(Entry(5))).value
