"""Quality tools: WikiText-2 perplexity (``perplexity``), its transformers cross-check (``hf_reference``),
the model under evaluation with its cached quantized variants (``session``), and the libraries behind the
perplexity, layer-profiling and Table 1 entry points (``perplexity_table``, ``profile_run``, ``order_table``)."""
