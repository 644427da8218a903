"""The data layer: YouTube-VIS / OVIS annotations, lazy frames, the catalog, splits, ToyVIS."""
