"""Stage 6, review: the review queue and prompt versions compared side by side."""
