"""Bundle recipes (``*.json``): shipped as package data, read through importlib.resources."""
