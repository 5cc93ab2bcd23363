"""Keypoint codecs: keypoints <-> network targets (heatmaps and the like).

Each codec is its own submodule with a symmetric ``encode`` / ``decode`` pair; import the one you
need (``from posekit.codecs import udp``). This package imports nothing itself, so a codec that
needs a framework costs nothing to the others.
"""
