"""Pipeline steps: plain functions that read from the notebook and write back to it."""
