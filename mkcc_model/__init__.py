"""The MKCC audio-visual emotion model (built on mkcc_kernels)."""
