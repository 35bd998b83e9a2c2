"""HC-MAPPO-L (Algorithm 1) and its ablations: config, GAE, buffers, PPO losses, Lagrange multiplier,
rollout, trainer, checkpoints and run logging."""
