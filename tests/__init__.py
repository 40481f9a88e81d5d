"""The test suite, a regular package: iterative-stratification 0.1.9 installs a top-level `tests`
package into site-packages, which would shadow this folder were it a namespace package."""
