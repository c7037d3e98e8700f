"""Autoscaling: the pure scale-decision engine shared by control loop, backtest and benchmark."""
