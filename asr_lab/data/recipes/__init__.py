"""Dataset recipes: one module per corpus, each building a manifest from sources already on the machine."""
