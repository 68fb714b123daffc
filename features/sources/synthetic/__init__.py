"""The built-in synthetic claims generator (docs/generator.md)."""
