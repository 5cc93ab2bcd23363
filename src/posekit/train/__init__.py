"""Training data: COCO-format keypoint datasets (``datasets``) and seeded augmentation (``augment``).

Both modules use only NumPy and OpenCV, so they work (and are tested) without PyTorch.
"""
