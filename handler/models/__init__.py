"""Typed data: the events we accept, the settings we run with, the results we return."""
