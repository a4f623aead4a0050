"""Integrations with other frameworks, each an optional extra: :mod:`seqtag.integrations.ray` (``seqtag[ray]``)."""
