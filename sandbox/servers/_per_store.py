"""PerStore: one shared object per store, so a protocol's plain and implicit-TLS listeners agree."""

from __future__ import annotations

import threading
import weakref
from collections.abc import Callable
from typing import Generic, TypeVar

T = TypeVar("T")


class PerStore(Generic[T]):
    """Calling it with a store gives that store's object, made on first use and dropped with the store."""

    def __init__(self, factory: Callable[[], T]) -> None:
        self._factory = factory
        self._objects: weakref.WeakKeyDictionary[object, T] = weakref.WeakKeyDictionary()
        self._lock = threading.Lock()

    def __call__(self, store: object) -> T:
        with self._lock:
            found = self._objects.get(store)
            if found is None:
                found = self._objects[store] = self._factory()
            return found
