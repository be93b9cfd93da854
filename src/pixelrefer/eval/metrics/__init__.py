"""Local metrics: semantic similarity / IoU, COCO caption metrics, multiple-choice letter accuracy."""
