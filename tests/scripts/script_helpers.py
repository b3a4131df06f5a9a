"""A script module (seed 001): importable here only because a test put this folder on sys.path."""


def encode_query(text):
    return [ord(c) % 97 for c in text.lower()]
