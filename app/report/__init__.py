"""The report (after review, before export): how close the synthetic records are to the real ones.

Column shapes (SDMetrics' Quality Report), words and n-grams per text field, k-NN precision and
recall in embedding space, each synthetic record's nearest real record, and the clusters only one
kind of record fills; one overall score with its parts, and a self-contained HTML page of it all.
"""
