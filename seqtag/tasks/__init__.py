"""Tasks: one package per task (recipe, model, task, predictor), on the shared skeleton in base.py.

Nothing is registered here: seqtag/registry.py lists the tasks explicitly.
"""
