"""Enrollment, renewal and revocation of device credentials: the operator's side.

``intake.py`` (decode, signature, clock window, where to answer, repeated requests),
``tokens.py`` (a bootstrap token's policy), ``rules.py`` (what to answer and what to
write), ``revocation.py`` (revoking keys, and again at start), all plain and
synchronous through the ports in ``ports.py``; ``desk.py`` is the thin actor.
docs/security.md, "Enrollment", says what a user sees.
"""
