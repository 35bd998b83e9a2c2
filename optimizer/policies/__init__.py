"""The three policy layers of HC-MAPPO-L (Section IV-B), each with parameter sharing within its layer.

- :mod:`.deployment` — auto-regressive GRU deployment policy and its step-value critic (eq. 28–30).
- :mod:`.user` — MAPPO user actor (server, split) with a reward and a delay-cost critic (eq. 16, 17, 32).
- :mod:`.allocation` — two-branch attention allocation policy with a Dirichlet over associated users.
- :mod:`.deployment_in_turn` — coverage-aware deployment, servers deciding in turn (default).
- :mod:`.allocation_correction` — bounded tilt of the square-root share (default allocation).
"""
