"""The option values of weight sharing and low-rank factorization, in a module that imports nothing: the stage
configs check them before torch is imported, and the modules that implement them import them from here."""

KMEANS_INITS = ("linear", "density", "random", "kmeans++")  # ``kmeans``: how the centroids start
SHARING_UPDATES = ("mean", "sum")  # ``sharing``: how a finetune moves a shared value (its members' mean or sum)
LOWRANK_METHODS = ("energy", "ratio", "rank")  # ``lowrank``: how each layer's rank is chosen
LOWRANK_SCHEMES = ("channel", "spatial")  # ``lowrank``: how a conv kernel is split in two
