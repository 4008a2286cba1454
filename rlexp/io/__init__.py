"""What a run writes: checkpoints, TensorBoard metrics, results.json."""

#: The TensorBoard scalar the HParams tab, the sweepers and `rlexp plot` compare runs by (here, not in
#: rlexp.io.metrics, so that `rlexp plot` can name it without loading torch).
OBJECTIVE = "eval/mean_return"
