"""The built-in VLA policy: a small CNN + MiniLM language features + an action-chunk head,
trained by behaviour cloning from the simulator's scripted expert (see docs/POLICY.md)."""
