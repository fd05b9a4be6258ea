"""Crowd package (人群包) definitions, shipped as package data."""
