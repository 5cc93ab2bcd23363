"""PyTorch rebuilds of posekit's networks (needs ``torch``; import the submodules explicitly)."""
