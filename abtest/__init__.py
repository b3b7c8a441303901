"""abtest: a pure statistics engine for judging a treatment version against control.

No I/O, no clock: numpy and scipy only. Effects are *treatment minus
control*; ``alternative`` uses scipy's words. Modules (import what you need;
this package imports nothing up front, so serving code that only needs
``abtest.assign`` does not load scipy):

- ``abtest.stats``: fixed-horizon tests, SRM, non-inferiority, Holm / BH.
- ``abtest.sequential``: mixture SPRT, always-valid p-values and intervals.
- ``abtest.group_sequential``: alpha-spending boundaries over an unplanned number of looks.
- ``abtest.power``: sample sizes and minimum detectable effects.
- ``abtest.analysis``: ``analyze(spec, data)`` -> promote / continue /
  rollback / inconclusive, with reasons and numbers; ``abtest.state``: what a
  verdict carries to the next look.
- ``abtest.plans`` and ``abtest.assign``: split plans and sticky hashing.
- ``abtest.results``: the frozen inputs and results shared by all of them.
"""
