"""The report room: everything that turns finished runs into the report, and the protocols that end in one.

The core (``hw4lib``) never imports this package (``import-linter`` keeps the rule). Modules:
``protocol`` (the demo and the loss study); the report pipeline ``build`` (its entry point) over
``snapshot`` (run files and per-image evaluation), ``probe`` (evaluating a checkpoint), ``images``,
``tables``, ``prompts``, ``stats``, ``quoted`` (results from outside, with sources), ``output`` (Markdown,
LaTeX, CSV), ``figures``, ``context`` (what the template reads) and ``render`` (HTML, PDF); ``plots``
(figures of one run); and ``templates/report.md.j2`` (the words).
"""
