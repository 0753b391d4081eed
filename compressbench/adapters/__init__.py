"""The only importers of third-party libraries beyond torch and the package set, one module per library:
torch_pruning, torch_ao (torch.ao's FX quantization), torchao (PT2E), onnx and onnxruntime, openvino, mlflow and
tensorboard. Libraries churn; an adapter is the one place to follow them, with explicit settings."""
