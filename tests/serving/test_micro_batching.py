"""MicroBatcher: concurrent requests share one model call, each gets its own rows back (no bentoml import)."""

import asyncio

import numpy as np
import pytest

from components.serving.micro_batching import MicroBatcher


class Model:
    """Labels are the ``x`` values, probabilities a tenth of them; records every call's row count."""

    def __init__(self, fail: bool = False) -> None:
        self.calls: list[int] = []
        self.fail = fail

    def __call__(self, columns):
        self.calls.append(len(columns["x"]))
        if self.fail:
            raise RuntimeError("model broke")
        return columns["x"].copy(), columns["x"] / 10.0


def _request(*values):
    return {"x": np.array(values, dtype=np.float64)}


def _gather(batcher, requests):
    async def run():
        return await asyncio.gather(*(batcher(r) for r in requests), return_exceptions=True)

    return asyncio.run(run())


def test_concurrent_requests_share_one_call_and_get_their_own_rows():
    model = Model()
    answers = _gather(MicroBatcher(model, max_rows=100), [_request(1, 2), _request(3), _request(4, 5, 6)])
    assert model.calls == [6]
    assert [a[0].tolist() for a in answers] == [[1, 2], [3], [4, 5, 6]]
    assert [a[1].tolist() for a in answers] == [[0.1, 0.2], [0.3], [0.4, 0.5, 0.6]]


def test_calls_hold_at_most_max_rows_and_keep_request_order():
    model = Model()
    answers = _gather(MicroBatcher(model, max_rows=4), [_request(1, 2), _request(3, 4), _request(5), _request(6)])
    assert model.calls == [4, 2]
    assert [a[0].tolist() for a in answers] == [[1, 2], [3, 4], [5], [6]]


def test_a_request_larger_than_max_rows_still_runs_alone():
    model = Model()
    answers = _gather(MicroBatcher(model, max_rows=2), [_request(1, 2, 3), _request(4)])
    assert model.calls == [3, 1]
    assert answers[0][0].tolist() == [1, 2, 3]


def test_a_failing_call_fails_every_request_in_it_and_the_next_call_runs():
    model = Model(fail=True)
    batcher = MicroBatcher(model, max_rows=10)
    answers = _gather(batcher, [_request(1), _request(2)])
    assert all(isinstance(a, RuntimeError) for a in answers)
    model.fail = False
    assert _gather(batcher, [_request(7)])[0][0].tolist() == [7]


def test_a_request_cancelled_while_queued_leaves_the_others_answered():
    model = Model()
    batcher = MicroBatcher(model, max_rows=10)

    async def run():
        kept, dropped = asyncio.ensure_future(batcher(_request(1))), asyncio.ensure_future(batcher(_request(2)))
        await asyncio.sleep(0)  # both queued, the flush not run yet
        dropped.cancel()
        return await kept, dropped

    (labels, _), dropped = asyncio.run(run())
    assert labels.tolist() == [1]
    with pytest.raises(asyncio.CancelledError):
        dropped.result()


def test_two_dimensional_scores_are_split_by_request_rows():
    """Multiclass: one row of class probabilities per record."""

    def model(columns):
        x = columns["x"]
        return x.astype(int).astype(str).astype(object), np.column_stack([x / 10, 1 - x / 10])

    answers = _gather(MicroBatcher(model, max_rows=10), [_request(1, 2), _request(3)])
    assert [a[0].tolist() for a in answers] == [["1", "2"], ["3"]]
    assert [a[1].shape for a in answers] == [(2, 2), (1, 2)]
    assert answers[1][1].tolist() == [[0.3, 0.7]]
