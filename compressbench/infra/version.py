"""The package's version (pyproject.toml says the same; a test holds them equal). A leaf module, so that every
layer can read it without importing the package's facade, which sits above everything."""
__version__ = "0.1.0"
