"""Small built-in files (not weights) fetched like weights: the demo image."""

from __future__ import annotations

from posekit.weights import PipMember, WeightsEntry, register

__all__ = ["DEMO_IMAGE"]

# A public-domain portrait (US Navy photo of Grace Hopper) shipped in matplotlib's wheels.
DEMO_IMAGE = register(
    WeightsEntry(
        name="demo-image",
        filename="grace_hopper.jpg",
        sha256="a8ca6d734765703b09728ab47fe59f473d93ae3967fc24c7c0288c3c7adb7130",
        size=61_306,
        sources=(
            PipMember(
                "matplotlib==3.10.3",
                "mpl-data/sample_data/grace_hopper.jpg",
                pip_args=("--only-binary=:all:", "--python-version", "3.11", "--implementation", "cp",
                          "--platform", "manylinux2014_x86_64"),
                archive_size=8_606_464,
            ),
        ),
        license="public domain (US Navy photograph), shipped in matplotlib's sample data",
        description="demo image for `posekit predict --demo`",
    )
)  # fmt: skip
