"""A test-only group of ranks that run as threads of one process (the seam, tested without MPI).

``ThreadGroup(size).run(fn)`` calls ``fn(comm)`` on ``size`` threads, each with a communicator
of its own rank, and returns their results in rank order. The collectives meet at a barrier:
an allreduce sums the ranks' buffers in rank order (every rank gets the same bits), an allgather
hands every rank the list of values. Each rank owns its model, as separate processes would; an
exception on one rank breaks the barrier, so the others stop instead of waiting forever.
"""
import threading

import numpy as np

from dltrain.parallel.communicator import Communicator, through_host

TIMEOUT = 120.0


class ThreadGroup:
    def __init__(self, size):
        self.size = size
        self.barrier = threading.Barrier(size, timeout=TIMEOUT)
        self.slots = [None] * size

    def run(self, fn):
        """[fn(comm of rank 0), fn(comm of rank 1), ...], run concurrently; re-raises the first
        rank's exception."""
        results, errors = [None] * self.size, [None] * self.size

        def main(rank):
            try:
                results[rank] = fn(ThreadRank(self, rank))
            except BaseException as error:      # noqa: BLE001  (reported below, on the caller)
                errors[rank] = error
                self.barrier.abort()

        threads = [threading.Thread(target=main, args=(rank,)) for rank in range(self.size)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        for error in errors:
            if error is not None and not isinstance(error, threading.BrokenBarrierError):
                raise error
        if any(errors):
            raise errors[0]
        return results


class ThreadRank(Communicator):
    def __init__(self, group, rank):
        self.group = group
        self.rank = rank
        self.size = group.size

    def _exchange(self, value):
        """Every rank's value, in rank order (two barriers: all written, then all read)."""
        group = self.group
        group.slots[self.rank] = value
        group.barrier.wait()
        values = list(group.slots)
        group.barrier.wait()
        return values

    def allreduce_sum(self, buffer):
        through_host(buffer, self._sum)             # device arrays go through the host, as with MPI

    def _sum(self, buffer):
        parts = self._exchange(buffer.copy())
        total = parts[0].copy()
        for part in parts[1:]:
            total += part
        buffer[...] = total

    def allgather(self, value):
        return self._exchange(value)

    def any(self, flag):
        return any(self._exchange(bool(flag)))

    def exchange(self, send, send_counts, recv_counts):
        starts = [sum(send_counts[:r]) for r in range(self.size)]
        parts = self._exchange([send[start:start + count].copy() for start, count in zip(starts, send_counts)])
        received = [parts[source][self.rank] for source in range(self.size)]
        assert [len(part) for part in received] == list(recv_counts), "exchange: counts disagree"
        return np.concatenate(received) if received else np.empty(0, np.uint8)

    def broadcast(self, arrays):
        root = self._exchange({k: v.copy() for k, v in arrays.items()} if self.rank == 0 else None)[0]
        for key, value in arrays.items():
            value[...] = root[key]            # (rank 0's copies live where its arrays do)
