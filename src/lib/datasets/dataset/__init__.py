"""Dataset classes: paths, class tables, result conversion and evaluation."""
