"""The rehearsal: a study config run end to end in minutes on a CPU, before GPU time is booked.

:func:`~biomedquant.study.rehearsal.config.write_rehearsal` derives from a study config (say
``config/paper.yaml``) a config of the same shape: the same datasets, prompting methods and
method list, each model family of the study stood in for by a tiny randomly initialised model of
the same architecture class and chat format (:mod:`~biomedquant.study.rehearsal.tiny_models`),
placed in a Hugging Face cache of its own under the study's model ids and a fixed commit, so that
``source: hf`` resolves them offline as it would for a user with a pre-filled cache
(:mod:`~biomedquant.study.rehearsal.hf_cache`). Methods this machine cannot run (AWQ and FP8 without
their GPUs, GGUF without llama.cpp) are left out and reported as skipped, with the reason the
study would give. ``biomedquant rehearse`` writes it and runs the real workflow on it.
"""
