"""The network (backbones, stems, projection heads) and its optimiser and schedules."""
