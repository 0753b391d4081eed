"""Pruning methods behind the ``prune`` and ``sensitivity`` stages.

- ``criteria`` and ``choices``: the method registry and the option names, importable without torch (configs
  are checked before it is imported).
- ``layers``: which layers a config names (exact names, sub-trees and glob patterns), checked against the model.
- ``unstructured``: magnitude and random weight pruning (zeros in place; the model keeps its shapes).
- ``structured``: L1-filter and Taylor channel pruning with physical removal (``adapters.torch_pruning``).
- ``schedules``: one-shot, iterative and the gradual (AGP, Zhu & Gupta 2017) schedule as a training callback.
- ``encoding``: a sparse encoding of a state_dict (bitmask or relative-index CSR + values), verified by decoding.
- ``stats``: what a pruning achieved — sparsity, channels removed, MACs reduction.
- ``sensitivity``: per-layer accuracy vs pruning ratio (Distiller-style), CSV + heat map + line plots.
"""
