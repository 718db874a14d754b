"""ZeroDiff++'s test-time parts, which read the unlabelled test features: DiffTTA and DiffGen."""
