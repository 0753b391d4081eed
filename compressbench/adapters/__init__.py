"""The only importers of third-party compression libraries, one module per library (torch_pruning,
torch.ao / torchao, onnxruntime). Libraries churn; an adapter is the one place to follow them."""
