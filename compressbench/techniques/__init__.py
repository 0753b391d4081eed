"""The compression techniques behind the stages: pruning, quantization, distillation, Deep Compression (weight
sharing, encoding, low-rank). Each works on models and deployables; none imports a stage or the pipeline."""
