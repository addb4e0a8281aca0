"""Churn: the BG/NBD probabilistic model and a supervised churn classifier."""
