"""Rolling updates of units, driven by the engine leader (docs/rollouts.md)."""
