"""Named recipes: sets of settings that the command-line tools take as one switch, ``--recipe``.

- ``paper`` (the defaults): what the MKCC paper states, with the readings listed in the
  README ("Model", "Training") where it is ambiguous.
- ``v0.1``: the settings of mkcc 0.1, which followed a public multimodal-emotion code base where
  the paper says otherwise: cross-modal attention with a residual connection, max pooling of the
  audio branch only and before the attention, a per-video z-score of every AU column, SGD with
  dampening 0.9 and a step learning-rate schedule.

A stored configuration (checkpoint, ``metrics.json``) that lacks one of these settings was
written by mkcc 0.1, so it is read with the ``v0.1`` values.
"""

V01_MODEL = {"attention_residual": True, "pool_placement": "before_attention", "video_pool": 1}
V01_TRAIN = {"dampening": 0.9, "lr_schedule": "step"}
V01_FEATURES = {"au_normalize": True}
RECIPES = {"paper": {}, "v0.1": {**V01_MODEL, **V01_TRAIN, **V01_FEATURES}}
