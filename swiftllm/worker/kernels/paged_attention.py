"""Attention over the paged KV cache (torch path; the Triton kernel mirrors ``paged_decode_attention``)."""
import torch
import torch.nn.functional as F


def context_slots(block_tables: torch.Tensor, seq_lens: torch.Tensor, block_size: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Cache slot of every context position, padded to the longest sequence.

    block_tables: [S, max_blocks] int64; seq_lens: [S] -> slots [S, L], valid [S, L] bool (L = max seq_len).
    """
    max_len = int(seq_lens.max())
    pos = torch.arange(max_len, device=block_tables.device)
    blocks = block_tables.gather(1, (pos // block_size).expand(len(seq_lens), -1).clamp_max(block_tables.shape[1] - 1))
    valid = pos.unsqueeze(0) < seq_lens.unsqueeze(1)
    slots = torch.where(valid, blocks * block_size + pos % block_size, 0)
    return slots, valid


def paged_decode_attention(q: torch.Tensor, k_cache: torch.Tensor, v_cache: torch.Tensor,
                           slots: torch.Tensor, valid: torch.Tensor, scale: float) -> torch.Tensor:
    """One new token per sequence attends over its whole cached context (its own K/V included).

    q: [S, num_q_heads, head_dim]; caches: [num_blocks, block_size, num_kv_heads, head_dim];
    slots, valid: [S, L] from ``context_slots`` -> out [S, num_q_heads, head_dim].
    """
    num_kv_heads, head_dim = k_cache.shape[2:]
    keys = k_cache.view(-1, num_kv_heads, head_dim)[slots].transpose(1, 2)      # [S, kv, L, d]
    values = v_cache.view(-1, num_kv_heads, head_dim)[slots].transpose(1, 2)    # [S, kv, L, d]
    out = F.scaled_dot_product_attention(q.unsqueeze(2), keys, values, attn_mask=valid[:, None, None, :],
                                         scale=scale, enable_gqa=True)          # [S, hq, 1, d]
    return out.squeeze(2)


def prefill_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, scale: float) -> torch.Tensor:
    """Causal attention of the last ``Tq`` positions of a ``Tk``-token context (cached prefix = Tk - Tq).

    q: [Tq, num_q_heads, head_dim]; k, v: [Tk, num_kv_heads, head_dim] -> [Tq, num_q_heads, head_dim].
    """
    tq, tk = q.shape[0], k.shape[0]
    group = q.shape[1] // k.shape[1]
    qh = q.transpose(0, 1)                                                # [hq, Tq, d]
    kh = k.transpose(0, 1).repeat_interleave(group, dim=0)                # [hq, Tk, d]
    vh = v.transpose(0, 1).repeat_interleave(group, dim=0)
    if tq == tk:
        out = F.scaled_dot_product_attention(qh, kh, vh, is_causal=True, scale=scale)
    else:
        allowed = torch.arange(tk, device=q.device)[None, :] <= torch.arange(tk - tq, tk, device=q.device)[:, None]
        out = F.scaled_dot_product_attention(qh, kh, vh, attn_mask=allowed, scale=scale)
    return out.transpose(0, 1)
