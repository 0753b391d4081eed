"""Infrastructure every layer may use: atomic files, locks, the registry, torchrun, pre-flight checks, safe loading
of user files. Imports nothing else of compressbench."""
