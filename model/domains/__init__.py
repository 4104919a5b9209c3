"""Built-in domain descriptions of `roadsight data synth` (see model.domain)."""
