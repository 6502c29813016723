"""moto's clock and random generator made recordable and replayable."""

from __future__ import annotations

import datetime as dt
import logging
import random
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

log = logging.getLogger(__name__)

# -- moto's clock and randomness ------------------------------------------------------

_EPOCH = dt.datetime(1970, 1, 1)
_MICROSECOND = dt.timedelta(microseconds=1)
#: Clock readings kept per record; past them, playback lets time run on from the last.
_MAX_READINGS = 256
_applying = threading.local()  # .clock and .random of the record this thread applies
_shim_lock = threading.Lock()
_real_utcnow: Callable[[], dt.datetime] | None = None
_shared_random: random.Random | None = None
_random_shim: random.Random | None = None


class _Recording:
    def __init__(self, real: Callable[[], dt.datetime], seed: int):
        self.real = real
        self.seed = seed
        self.readings: list[int] = []

    def now(self) -> dt.datetime:
        value = self.real()
        if len(self.readings) < _MAX_READINGS:
            self.readings.append((value - _EPOCH) // _MICROSECOND)
        return value


class _Playback:
    def __init__(self, readings: list[int], ts: float):
        self.readings = [_EPOCH + r * _MICROSECOND for r in readings]
        self.last = dt.datetime.fromtimestamp(ts, dt.UTC).replace(tzinfo=None)
        self.index = 0
        self.since = time.monotonic()

    def now(self) -> dt.datetime:
        if self.index < len(self.readings):
            self.last = self.readings[self.index]
            self.index += 1
            self.since = time.monotonic()
            return self.last
        # Time still moves, so things made later by the request stay ordered after.
        return self.last + dt.timedelta(seconds=time.monotonic() - self.since)


def _shim_utcnow() -> dt.datetime:
    clock: _Recording | _Playback | None = getattr(_applying, "clock", None)
    if clock is not None:
        return clock.now()
    assert _real_utcnow is not None
    return _real_utcnow()


class _ThreadDraws(random.Random):
    """Draws from the applying thread's own generator, if it has one, else from ``shared``.

    Every other method of ``random.Random`` (and moto's MotoRandom: uuid4, choice, ...)
    is built on ``random()`` and ``getrandbits()``, so overriding those two suffices.
    """

    def __init__(self, shared: random.Random):
        super().__init__()
        self._shared = shared

    def _source(self) -> random.Random:
        own: random.Random | None = getattr(_applying, "random", None)
        return own if own is not None else self._shared

    def random(self) -> float:
        return self._source().random()

    def getrandbits(self, k: int, /) -> int:
        return self._source().getrandbits(k)

    def seed(self, *args: Any, **kwargs: Any) -> None:
        shared = getattr(self, "_shared", None)  # None while Random.__init__ runs
        if shared is None:
            super().seed(*args, **kwargs)
        else:  # moto-api/seed
            shared.seed(*args, **kwargs)


def _install_shims() -> None:
    """Route moto's clock and random generator through shims that can record or replay.

    Replay cannot bring back a time or an id moto made up, unless moto is made to make up
    the same ones: each record keeps the clock readings and a seed for the ids (role ids,
    S3 version ids, ...) moto drew while applying it, and replay feeds them back. moto's
    modules bind ``utcnow`` and ``mock_random`` by name at import, so every binding is
    swapped; modules imported later get the shims from where they import them. On a thread
    that is not applying a record, the shims are moto's own clock and generator.
    """
    global _real_utcnow, _shared_random, _random_shim
    import moto.core.utils as core_utils
    import moto.moto_api._internal as moto_api

    with _shim_lock:
        if _real_utcnow is None:
            _real_utcnow = core_utils.utcnow
        if _shared_random is None:
            _shared_random = moto_api.mock_random
            # A subclass of moto's own class, for its helpers (uuid4, get_random_hex, ...).
            shim_type = type("JournalMotoRandom", (_ThreadDraws, type(_shared_random)), {})
            _random_shim = shim_type(_shared_random)
        for name, module in list(sys.modules.items()):
            if module is None or not (name == "moto" or name.startswith("moto.")):
                continue
            for attr, value in list(vars(module).items()):
                if value is _real_utcnow:
                    setattr(module, attr, _shim_utcnow)
                elif value is _shared_random:
                    setattr(module, attr, _random_shim)


@contextmanager
def _recording() -> Iterator[_Recording]:
    assert _real_utcnow is not None and _shared_random is not None, "install the shims"
    # Drawn from moto's generator, so that seeding moto (moto-api/seed) still makes ids
    # reproducible from run to run.
    state = _Recording(_real_utcnow, _shared_random.getrandbits(64))
    _applying.clock, _applying.random = state, random.Random(state.seed)
    try:
        yield state
    finally:
        _applying.clock = _applying.random = None


@contextmanager
def _playback(meta: dict[str, Any]) -> Iterator[None]:
    seed = meta.get("seed")
    _applying.clock = _Playback(list(meta.get("clock", [])), float(meta["ts"]))
    _applying.random = random.Random(seed) if seed is not None else None
    try:
        yield
    finally:
        _applying.clock = _applying.random = None
