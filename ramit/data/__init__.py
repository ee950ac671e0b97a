"""Data layer: dataset registry, fetch/verify, MATLAB-exact degradations, degraded pair loading.

Submodules are imported on use (`ramit.data.fetch`, `.degrade`, `.pairs`, `.io`, `.registry`) so that
importing the package stays cheap (torch is only needed for the test-noise field).
"""
