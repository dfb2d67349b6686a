"""Requests that arrive together share one `predict` call."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

# requests of more rows than this are predicted on a worker thread, so that /health, /metrics and
# small requests are not stuck behind them; smaller ones run inline (the hop costs ~0.1 ms), in
# batches (`Batcher`) of at most this many rows
INLINE_ROWS = 1000


class Batcher:
    """One `predict` call for the requests that arrived together.

    While the event loop predicts for one request, others arrive; their handlers run in the next
    loop iteration, each adds its matrix here, and one `call_soon` flush predicts them stacked:
    a scikit-learn call costs about the same for 1 row as for 20 (validation, not arithmetic), so
    under concurrent load this multiplies throughput; a lone request waits one loop turn. Only
    matrices (the numpy fast path) are stacked, rows are independent in `predict`, and a batch
    that fails is redone request by request so that one bad payload fails alone.
    """

    def __init__(self, predict: Callable[[Any], Any]):
        self.predict = predict
        self.pending: list[tuple[Any, asyncio.Future]] = []
        self.rows = 0
        self.scheduled: asyncio.Handle | None = None

    def submit(self, matrix) -> asyncio.Future:
        """A future for MATRIX's predictions. MATRIX has at most INLINE_ROWS rows (larger ones are
        the caller's to predict on a thread), and so does every batch: when MATRIX would take the
        pending rows past INLINE_ROWS they are predicted first, and MATRIX starts a new batch."""
        loop = asyncio.get_running_loop()
        if self.pending and self.rows + len(matrix) > INLINE_ROWS:
            self.flush()
        future = loop.create_future()
        if not self.pending:
            self.scheduled = loop.call_soon(self.flush)
        self.pending.append((matrix, future))
        self.rows += len(matrix)
        return future

    def flush(self) -> None:
        if self.scheduled is not None:  # flushed early: the next batch schedules its own
            self.scheduled.cancel()
            self.scheduled = None
        batch, self.pending, self.rows = self.pending, [], 0
        batch = [(m, f) for m, f in batch if not f.done()]  # a client that hung up
        if not batch:
            return
        if len(batch) > 1:
            import numpy as np

            try:
                out = self.predict(np.concatenate([m for m, _ in batch]))
            except Exception:  # noqa: BLE001 - redone one by one below, each gets its own error
                out = None
            if out is not None and len(out) == sum(len(m) for m, _ in batch):
                start = 0
                for matrix, future in batch:
                    future.set_result(out[start:start + len(matrix)])
                    start += len(matrix)
                return
        for matrix, future in batch:
            try:
                future.set_result(self.predict(matrix))
            except Exception as exc:  # noqa: BLE001 - handed to that request's handler
                future.set_exception(exc)
