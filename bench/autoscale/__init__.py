"""Autoscaling quality benchmark: request traces, many scaling policies, simulated time.

Each policy drives the replica count of a simulated vLLM deployment
(:mod:`apps.fleetsim`) while a request trace is replayed through it; nothing sleeps. The
evaluation matrix is GPU profiles x workloads x seeds (tuning seeds 0-4, held-out seeds
100-104). Every adaptive policy sees the same metrics with the same scrape delay, is
evaluated on the same period, waits the same cold start, starts from the same count sized
from the first minutes of load and shares the same maximum; the oracle and the static
counts, sized from the whole trace, are references. Requests no replica of the profile can
serve within the SLO are counted apart as infeasible. The figures per policy and cell are
the TTFT attainment over the feasible requests and over all, the inter-token share, TTFT
percentiles, GPU-hours, scale actions and the time spent at the maximum; over the matrix,
the minimum attainment, the cells meeting the target and geometric means of GPU-hours
against the oracle and the cheapest baseline meeting the target.

Modules:

``traces``
    The Azure LLM inference trace (when present on the machine), any CSV with its columns
    (timestamps as datetimes, seconds or milliseconds), and the synthetic workload mixes
    (chat, code completion, long context, bursty, diurnal, step) sized per GPU profile.
``sim``
    The driver: gateway queueing (or bound routing), metric sampling with a scrape delay,
    the evaluation loop, the figures.
``policies``
    Static, Kubernetes HPA (also on our own signals), KEDA, Knative KPA and AIBrix APA
    reimplemented from their public definitions, and the project's own policy, which calls
    :func:`apps.autoscaling.engine.step` itself.
``hpa_reference``
    Kubernetes HPA's algorithm, independent of the engine: the HPA and KEDA baselines use
    it, and the engine's property tests compare against it.
``oracle``
    Which requests are feasible, per-replica capacity measured on the replica model and the
    clairvoyant schedule that bounds what any policy can save.
``report``
    The tables, the target checks, the matrix summary and the plots.

Run ``python -m bench.autoscale --help`` from the repository root.
"""
