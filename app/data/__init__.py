"""Stage 1, data: tables imported as input rows (or real records), their train/eval/holdout split,
and the demo notebook."""

# the table files the importer reads, by suffix (here, not in the importer, so that the window can
# accept a dropped file without loading pandas at start-up)
FORMATS = {".csv": "csv", ".tsv": "tsv", ".jsonl": "jsonl", ".ndjson": "jsonl", ".json": "json", ".parquet": "parquet"}
