"""The project's library (never imports a write-up).

Importing it pins the CPU kernels' instruction sets (shared/numerics.py) for this process and
every process it starts; torch reads them at its first operation, so a script run by hand, a
notebook, the Snakefile's jobs and the tests all compute with the same kernels.
"""

from shared.numerics import pin_numerics_env

pin_numerics_env()
