"""Runnable examples of ``mkcc_kernels`` (``python -m examples.<name>``); not installed with the
package."""
