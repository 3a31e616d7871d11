"""The quality funnel: validators, scorers, judges, dedupe and metrics (all headless)."""
