"""CenterNet2: class-agnostic CenterNet proposals on FPN levels + a cascade of RoI box heads."""
