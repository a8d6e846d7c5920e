"""Micro-batching for the service: concurrent requests coalesced into one model call.

Shipped inside each bento beside ``service.py`` as a top-level module. It imports
nothing from its neighbours, so it loads the same way from the bento and from the
project (``components.serving.micro_batching``, as the unit tests do).
"""

from __future__ import annotations

import asyncio
import collections
from collections.abc import Callable

import numpy as np

Columns = dict[str, np.ndarray]
Answer = tuple[np.ndarray, np.ndarray]  # (answers, scores): row i of each is request row i's (scores may be 2-D)


class MicroBatcher:
    """Coalesce concurrent requests into one model call; one call at a time per worker.

    ``predict`` takes the requests' columns concatenated and returns answers (labels or
    values) and scores (one row of class probabilities per row, or a number) for every row;
    each request gets back its own rows, in order.

    No timer: a request queues and schedules a flush behind the callbacks already
    ready to run, so requests the event loop is handling at the same moment join the
    same call (up to ``max_rows``). An idle server answers at once; a busy one batches more.

    The model runs on the event loop thread. A model thread bought little (the GIL) and
    cost much: under load, a model call took several times its own length from submit to
    result, as the thread waited for the busy loop to hand over the GIL.
    """

    def __init__(self, predict: Callable[[Columns], Answer], max_rows: int) -> None:
        self._predict, self._max_rows = predict, max_rows
        self._queue: collections.deque = collections.deque()
        self._scheduled = False

    async def __call__(self, columns: Columns) -> Answer:
        loop = asyncio.get_running_loop()
        future = loop.create_future()
        self._queue.append((columns, len(next(iter(columns.values()))), future))
        if not self._scheduled:
            self._scheduled = True
            loop.call_soon(self._flush)
        return await future

    def _flush(self) -> None:
        """Run one model call over the queued requests; schedule another if some are left."""
        batch = [self._queue.popleft()]
        rows = batch[0][1]
        while self._queue and rows + self._queue[0][1] <= self._max_rows:
            batch.append(self._queue.popleft())
            rows += batch[-1][1]
        if self._queue:
            asyncio.get_running_loop().call_soon(self._flush)  # after the answers below go out
        else:
            self._scheduled = False
        parts = [b[0] for b in batch]
        try:
            columns = parts[0] if len(parts) == 1 else {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}
            labels, proba = self._predict(columns)
        except Exception as err:  # surfaces as a 500 on each waiting request
            for *_, future in batch:
                if not future.done():
                    future.set_exception(err)
            return
        start = 0
        for _, n, future in batch:
            if not future.done():  # a request cancelled while queued (timeout, client gone)
                future.set_result((labels[start : start + n], proba[start : start + n]))
            start += n
