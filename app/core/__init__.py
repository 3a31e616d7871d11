"""The studio's foundation: errors, paths, settings, the task handle and the core scheduler.

Everything may import ``app.core``; ``app.core`` imports nothing else of the studio.
``backends`` depends on this package alone.
"""
