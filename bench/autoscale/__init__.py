"""Autoscaling quality benchmark: one request trace, many scaling policies, simulated time.

Each policy drives the replica count of a simulated vLLM deployment
(:mod:`apps.fleetsim`) while a request trace is replayed through it; nothing sleeps, so an
hour of traffic takes about a second per policy. Every policy sees the same metrics with
the same scrape delay, is evaluated on the same period and waits the same cold start for
the replicas it adds. The figures per policy and trace are the share of requests within
the time-to-first-token and inter-token SLOs, TTFT percentiles, GPU-hours, cost and the
number of scale actions.

Modules:

``traces``
    The Azure LLM inference trace (when present on the machine), any CSV with its columns,
    and synthetic steady, diurnal, step and bursty traces; all time-scalable.
``sim``
    The driver: metric sampling with a scrape delay, the evaluation loop, the figures.
``policies``
    Static, Kubernetes HPA, KEDA, Knative KPA and AIBrix APA reimplemented from their
    public definitions, and the project's own policy, which calls
    :func:`apps.autoscaling.engine.step` itself.
``hpa_reference``
    Kubernetes HPA's algorithm, independent of the engine: the HPA and KEDA baselines use
    it, and the engine's property tests compare against it.
``oracle``
    Per-replica capacity measured on the replica model and the clairvoyant schedule that
    bounds what any policy can save.
``report``
    The Markdown table and the plots.

Run ``python -m bench.autoscale --help`` from the repository root.
"""
