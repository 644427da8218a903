"""YouTube-VIS / OVIS evaluation."""
