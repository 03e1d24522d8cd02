"""The report room: everything that turns finished runs into the report, and the protocols that end in one.

The core (``hw4lib``) never imports this package (``import-linter`` keeps the rule). Modules: ``protocol``
(the demo and the loss study), ``report`` (the snapshot, the template's context, rendering), ``tables``,
``plots``, ``probe`` (per-image evaluation of a checkpoint) and ``templates/report.md.j2`` (the words).
"""
