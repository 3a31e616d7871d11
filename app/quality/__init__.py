"""Stage 4, quality: validators, judges, pairwise preference, dedupe, diversity and the funnel."""
