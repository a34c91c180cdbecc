"""The inspector's pop-up screens: a memory record, a model call, a plan entry, go-to, keys."""
