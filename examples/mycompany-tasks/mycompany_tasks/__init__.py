"""Task types of mycompany, registered when taskservice loads the `taskservice.tasks` entry point."""

from __future__ import annotations

import collections
import json
import re
from typing import Annotated

from taskservice import InputFile, OutputFile, Range, RetryPolicy, TaskContext, task

CHUNK_BYTES = 1024 * 1024
WORD = re.compile(r"[\w']+")


@task(
    "mycompany.word_count",
    # A network share can hiccup: run again up to 3 times in all, 2 s then 4 s later (±10%).
    retry=RetryPolicy(max_attempts=3, backoff=2.0, multiplier=2.0, jitter=0.1, retry_on=(OSError,)),
)
def word_count(
    ctx: TaskContext,
    *,
    input_fpath: InputFile,  # under the server's --data-root; must exist at Submit
    output_fpath: OutputFile,  # written to a hidden file, renamed into place only on success
    top: Annotated[int, Range(1, 1000)] = 10,  # checked at Submit: top=0 is INVALID_ARGUMENT
    lowercase: bool = True,
) -> dict:
    """Count the words of a text file; write the counts as JSON and return the most common ones.

    Args:
        input_fpath: The text to count, UTF-8.
        output_fpath: Where the counts of every word go, as JSON.
        top: How many of the most common words the result lists.
        lowercase: Count "The" and "the" as one word.
    """
    counts: collections.Counter[str] = collections.Counter()
    with open(input_fpath, "rb") as source:
        total = source.seek(0, 2)
        source.seek(0)
        done = 0
        carry = b""
        while chunk := source.read(CHUNK_BYTES):
            # A word may straddle two chunks: keep the tail after the last space for the next round.
            text, _, carry = (carry + chunk).rpartition(b" ")
            counts.update(_words(text, lowercase))
            done += len(chunk)
            # Progress in bytes; it also raises StopTask when a client stops the task.
            ctx.progress(current=done, total=total, message=f"{len(counts)} distinct words so far")
        counts.update(_words(carry, lowercase))
    with open(output_fpath, "w") as out:
        json.dump(dict(counts.most_common()), out)
    ctx.log(f"counted {sum(counts.values())} words in {ctx.given_path('input_fpath')}")
    return {"words": sum(counts.values()), "distinct": len(counts), "top": counts.most_common(top)}


def _words(data: bytes, lowercase: bool) -> list[str]:
    text = data.decode("utf-8", "replace")
    return WORD.findall(text.lower() if lowercase else text)
