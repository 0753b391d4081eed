"""The option values the pruning techniques accept, in a module that imports nothing: the stage configs check
them before torch is imported (``prune.schedule=agpp`` fails in a fraction of a second), and the modules that
implement them import them from here. Method names are ``criteria.PRUNE_CRITERIA``'s (torch-free too)."""

SCHEDULES = ("oneshot", "iterative", "agp")  # ``schedules``: how the final amount is reached
KEEP_ROUNDINGS = ("floor", "nearest")  # ``structured``: how a layer's kept channel count is rounded
SENSITIVITY_METHODS = ("magnitude", "l1_filter")  # ``sensitivity``: the criteria a per-layer scan prunes with
