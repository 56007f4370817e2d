"""Recipes that bring your own model: the modules they import."""
