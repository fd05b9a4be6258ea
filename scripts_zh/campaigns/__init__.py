"""Campaign cascades, shipped as package data."""
