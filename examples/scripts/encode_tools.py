"""A script module, as in seed 001: importable on the host only because its folder is on
sys.path there. cloudpickle pickles its functions by reference, so a worker without this
folder fails with ModuleNotFoundError: No module named 'encode_tools'."""


def encode_query(text):
    return [ord(c) % 97 for c in text.lower()]
