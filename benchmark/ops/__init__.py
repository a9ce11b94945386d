"""Numerical building blocks shared by strategies, training and pre-training: blocked distances, k-means,
kNN graphs with conjugate gradient, and file locks. Pure functions of tensors (or paths); no strategy,
training or configuration code here, so every layer above can use them."""
