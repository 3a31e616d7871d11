"""Stage 1, data: tables imported as input rows (or real records), and the demo notebook."""
