"""Hyperparameter search with pairhook in every trial.

``model.tune()`` (Ultralytics' own tuner, with or without Ray) on a model with pairhook installed trains every trial
with the installation (:mod:`~pairhook.tune.builtin`).
"""
