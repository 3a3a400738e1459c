"""Quantized layer variants (INT8, INT4 RTN, INT4 AWQ): algorithms, ops, formats and the variant cache.

Entry points:
- ``variants.quantize_layer_rtn / quantize_layer_int8`` and ``awq.quantize_layer_awq``: one layer;
- ``model_quantizer.quantize_model``: every layer of a model into one ``spec.VariantSpec``;
- ``variant_cache.save_variant / load_variant``: safetensors + checksummed manifest;
- ``awq_checkpoint.load_awq_layers``: published AutoAWQ checkpoints.
Ops (all drop-in ``Linear``s): ``int8_linear.Int8Linear``, ``int4_linear.Int4Linear`` (CPU),
``awq_linear.AwqLinear`` (CUDA, Triton kernel in ``triton_awq_gemm``).
"""
