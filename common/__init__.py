"""Support shared by the three parts: the user-error type, file helpers, devices and precision.

Nothing here knows about models, leakage or the environment; every other package may import it,
and it imports none of them.
"""
