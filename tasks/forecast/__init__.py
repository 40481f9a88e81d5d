"""Forecasting: one series or a panel of many, forecast `horizon` steps ahead (statistical models and networks)."""
