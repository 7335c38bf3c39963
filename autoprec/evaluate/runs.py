"""Running a model on samples: one sample with onnxruntime's failures on the user's data as one-line errors, or
several samples over threads that share one session."""

from __future__ import annotations

import re
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import onnxruntime as ort

from autoprec.data import Sample
from autoprec.errors import UserError
from autoprec.evaluate.segments import SegmentedSession


def run_sample(session: ort.InferenceSession, outputs: list[str], sample: Sample, index: int) -> list[np.ndarray]:
    """`session.run` on sample `index`; onnxruntime refusing the sample is a UserError naming it."""
    try:
        return session.run(outputs, sample)
    except Exception as exc:  # onnxruntime raises its own exception types (Fail, InvalidArgument, ...)
        if not type(exc).__module__.startswith("onnxruntime"):
            raise
        raise UserError(
            f"sample {index}: onnxruntime cannot run the float model on it ({ort_message(exc)}); check that sample"
        ) from exc


def run_threaded(
    session: ort.InferenceSession | SegmentedSession, outputs: list[str], feeds: list[Sample], threads: int
) -> list[list[np.ndarray]]:
    """`session.run` of each feed, `threads` feeds at a time in this process, sharing `session` (onnxruntime's run
    releases the GIL and is thread-safe; each run uses the session's one intra-op thread): the same outputs, in the
    same order, as running them one by one. A segmented session not yet compared with its whole graph (the guard)
    runs its first feed alone."""
    if threads < 2 or len(feeds) < 2:
        return [session.run(outputs, feed) for feed in feeds]
    unverified = isinstance(session, SegmentedSession) and session.plan.verified is None
    first = [session.run(outputs, feeds[0])] if unverified else []
    with ThreadPoolExecutor(min(threads, len(feeds) - len(first)), thread_name_prefix="autoprec-run") as pool:
        return first + list(pool.map(lambda feed: session.run(outputs, feed), feeds[len(first) :]))


def ort_message(exc: Exception) -> str:
    """onnxruntime's first message line, with the failing node and without its source-file prefix."""
    text = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
    node = re.search(r"running (\w+) node\. Name:'([^']*)'", text)
    message = text.split("Status Message: ", 1)[-1]
    message = re.sub(r"^/\S+:\d+ .*? was false\. ", "", message)  # the C++ assertion behind the message
    return (f"{node[1]} node '{node[2]}': " if node else "") + message[:300]
