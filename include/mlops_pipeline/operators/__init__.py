"""Operators the Amazon provider lacks."""
