"""Shapes from a module with lazy annotations: the capsule must compile them the same way."""

from __future__ import annotations

import dataclasses


class Config:
    retries: list[int] | None = None  # fine on 3.9 only because annotations stay strings

    def first(self) -> int | None:
        return self.retries[0] if self.retries else None


def annotated(x: int | None, y: dict[str, list[int]]) -> tuple[int, ...] | None:
    return None


@dataclasses.dataclass
class Job:
    name: str
    tags: list[str] = dataclasses.field(default_factory=list)
    owner: str | None = None


def config_first(values):
    cfg = Config()
    cfg.retries = values
    return cfg.first()


def annotations_of():
    return annotated.__annotations__, Config.__annotations__


def make_job(name):
    job = Job(name)
    job.tags.append("new")
    return job
