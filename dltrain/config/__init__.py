"""Config loading (with line numbers), composition and validation."""
