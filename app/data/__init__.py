"""Stage 1, data: tables imported as input rows (or real records), their train/eval/holdout split,
and the demo notebook."""
