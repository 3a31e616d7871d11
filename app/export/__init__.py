"""Stage 7, export: the records a person trusts, as JSONL/CSV/Parquet, chat SFT or DPO pairs."""
