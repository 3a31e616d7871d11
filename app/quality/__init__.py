"""Stage 4, quality: validators (personal data too, and redaction), judges, pairwise preference, dedupe,
diversity, copies of real and few-shot records, canaries, eval contamination, and the funnel."""
