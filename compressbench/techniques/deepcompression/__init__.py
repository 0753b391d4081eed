"""Deep Compression (Han et al. 2016) and low-rank factorization, behind the cluster, encode and lowrank stages.

- ``choices``: the option names of the modules below, importable without torch (configs are checked before it
  is imported).
- ``kmeans``: exact 1-D k-means (Lloyd) of a layer's weights, with linear, density, random and k-means++ init.
- ``sharing``: weight sharing — cluster a model's layers (zeros stay zero) and keep every layer at its shared
  values while a later train stage finetunes them (each shared value moves by its members' summed or mean update).
- ``huffman``: a canonical, length-limited Huffman coder, vectorised with numpy (blocked streams decode together).
- ``fileformat``: the Deep Compression file — per layer relative indices, codebook and weight indices, both
  Huffman coded — its writer, its reader, and the per-layer size table of Han et al.'s Tables 2-5.
- ``lowrank``: truncated-SVD factorization of Linear and conv layers into two thinner layers.
"""
