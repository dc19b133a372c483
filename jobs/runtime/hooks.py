"""Observers of a night's stages and writes: none in production.

The pipeline says where it is - which stage began, which write is about to happen -
and anything registered with ``add`` hears it. Nothing is registered unless a tool
outside the pipeline does so: the kill harness of the resume tests and the
reliability suite (jobs/dev/faults.py) kills a run at a chosen write.
"""
from __future__ import annotations

from typing import Protocol


class Observer(Protocol):
    def stage(self, name: str) -> None: ...

    def write(self, what: str) -> None: ...


_observers: list[Observer] = []


def add(observer: Observer) -> None:
    _observers.append(observer)


def remove(observer: Observer) -> None:
    _observers.remove(observer)


def stage(name: str) -> None:
    """The night starts stage ``name`` (ingest, silver, gold, ...)."""
    for observer in _observers:
        observer.stage(name)


def write(what: str) -> None:
    """A write is about to happen: a Delta partition, a small file, a retention DELETE or VACUUM."""
    for observer in _observers:
        observer.write(what)
