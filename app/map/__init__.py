"""Stage 5, map: embeddings, the 2-D projection with clusters, and the axes records are ranked on."""
