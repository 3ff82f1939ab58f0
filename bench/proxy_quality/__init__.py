"""Proxy quality: the paper's Table 1, Figure 2 and Figure 3 on this project's own code.

Samples K architectures with ``blockzoo.validation.design.uniform`` (per stage a uniform depth,
then a uniform expansion ratio per layer) from ``random.Random(arch_seed)`` — reporting seed 0,
fixed before any result was seen; the reference itself is never a candidate — and measures how
well every proxy ranks them against their final accuracy trained from scratch (SC), from PR
weights (PR) and from zoo KD weights (KD). The trainer and the statistics are the library's
(``blockzoo.validation``); this package is the protocol driver around them.

Stages (each resumable; run them separately or with ``--stage all``):

``proxies`` (:mod:`.proxies`)
    dataset store, reference (trained once, kept under ``bench/results/cache/``), block zoos
    for every T of the sweep with PR+KD (``init="remap"``) and KD-only (``init="random"``), the
    KD-only zoo after one epoch's worth of batches, the PR-only ablation (remapped network, BN
    recalibrated on the T KD batches, accuracy on those batches) and the zero-cost baselines
    (``blockzoo.zerocost.score_zero_cost`` on the same T batches, seed 0 init). Each finished
    proxy configuration is cached in ``bench/results/cache/proxy_quality/<protocol>/proxies.json``.
``groundtruth`` (:mod:`.workers`; ``gtworker``/``parallel``: several processes sharing the jobs)
    final accuracies through ``blockzoo.validation.groundtruth`` (one cached JSON per training
    in ``bench/results/cache/groundtruth/``, resumable).
``report`` (:mod:`.report`, :mod:`.markdown`, :mod:`.plots`)
    Spearman ρ and Kendall τ of every proxy against SC / PR / KD final accuracy with bootstrap
    95% intervals (archs resampled with replacement), paired intervals of BlockZoo − each
    signal, the seed-to-seed ceiling, a generated verdict, the proxy cost per architecture,
    ρ against T (Figure 2) and final accuracy by initialisation (Figure 3):
    ``bench/results/proxy_quality[.<protocol>].{md,json}`` and PNGs in ``bench/results/figures/``.

Protocols (:mod:`.protocols`): ``cpu`` (the committed report; see
docs/proxy-quality-protocol.md), ``quick`` (``--quick``: a ≤15-minute smoke run of every stage at
toy scale — its numbers are not evidence), ``gpu`` (``mbv3-cifar`` for a lent GPU machine) and
``dev`` (the ``cpu`` protocol on development architectures drawn with seed 1, for tuning; see
docs/proxy-tuning.md).

    .venv/bin/python -m bench.proxy_quality --stage all --quick
    .venv/bin/python -m bench.proxy_quality --stage proxies --budget-minutes 60
    .venv/bin/python -m bench.proxy_quality --stage groundtruth --budget-minutes 120
    .venv/bin/python -m bench.proxy_quality --stage report
"""
