"""Stage 3, generate: runs of a prompt over input rows, best-of-N, transforms, model choice."""
