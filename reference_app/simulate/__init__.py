"""`pixecom simulate`: the audit's scale scenarios (audit §2, §10) against the reference
deployment on one machine. See :mod:`reference_app.simulate.runner`."""
