"""SLO definitions, error budgets, multi-window multi-burn-rate evaluation, rule export."""
