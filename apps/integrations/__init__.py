"""Thin typed clients of external systems, one package each (STYLE.md §5)."""
