"""`pixecom simulate`: the audit's scale scenarios A, B and C (docs/scaling.md) against the
reference deployment on one machine. See :mod:`reference_app.simulate.runner`."""
