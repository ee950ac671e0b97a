"""ramit-bench: end-to-end reproduction of the RAMiT lightweight image-restoration benchmarks."""

__version__ = "0.1.0"
