"""Performance benchmarks of imageproc: see bench/README.md."""
