"""The context manager (issue 6): what the model sees of a long session, and what it costs.

- `budget.py`: exact token accounting with the model's tokenizer; the budget (n_ctx - reply reserve).
- `compaction.py`: compaction before overflow (elide, summarise, cut), inspect and undo;
  `summary.py`: the model's summary (continuing the cached conversation); `persist.py`: the
  session store side (schema 2: summaries, elisions, pins, undone exchanges).
- Turn latency (reuse of what the model already holds) is the worker's job: the exact token
  transcript is `LlamaRunner.cached`, with state checkpoints for divergences
  (`engine/checkpoints.py`); a compaction or an edit simply sends a prompt that diverges.

Like agent/ and store/, this package imports neither textual nor llama_cpp.
"""
