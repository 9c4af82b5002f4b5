"""A callable that adds up the time spent in it (for the examples' timing reports)."""

import time


class Timed:
    """Wraps ``function``; ``seconds`` and ``calls`` add up over its calls."""

    def __init__(self, function):
        self.function, self.seconds, self.calls = function, 0.0, 0

    def __call__(self, *args):
        start = time.perf_counter()
        try:
            return self.function(*args)
        finally:
            self.seconds += time.perf_counter() - start
            self.calls += 1
