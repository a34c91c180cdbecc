"""The inspector's widgets: one panel per file, each with its own DEFAULT_CSS."""
