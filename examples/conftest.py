"""A downstream-style suite: what a library's own tests look like with the remote fixture."""
