"""The end-to-end demo: a simulated, instrumented ML system with injected incidents
(``simulator``, ``incidents``), every analysis over it (``runner``) and an HTML report
(``report``)."""
