"""The write-ups. Importing the package pins the CPU kernels first (see shared/__init__.py), so
`python -m replications.<write-up>.scripts.<script>` run by hand computes as its DAG job does."""

import shared  # noqa: F401
