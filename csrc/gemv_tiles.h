// How the quantized decode GEMVs (int4_linear.cpp, int8_linear.cpp) walk their output: ``kernel.tile<MT, NR>(m0, n0)``
// computes y[m0 .. m0 + MT, n0 .. n0 + NR]. Activation rows go four at a time with two weight rows per tile; the last
// one to three activation rows take more weight rows, so several accumulators are always in flight.
#pragma once

#include <immintrin.h>

#include <cstdint>

namespace morphserve {

// How far ahead of its reads a GEMV thread prefetches weight bytes. A single core streaming a tile's weight rows
// reached 5 GB/s of INT4 codes without it and 6-7.6 GB/s with 2 KiB (the best of 1, 2 and 4 KiB measured here).
constexpr int64_t kPrefetchBytes = 2048;
constexpr int64_t kCacheLine = 64;

// Called with each weight read at `offset` bytes into its row: one prefetch per cache line read.
inline void prefetch_ahead(const void* read, int64_t offset) {
  if (offset % kCacheLine == 0) _mm_prefetch(static_cast<const char*>(read) + kPrefetchBytes, _MM_HINT_T0);
}

template <int MT, int NR, typename Kernel>
void tiles_of_weight_rows(const Kernel& kernel, int64_t m0, int64_t n_begin, int64_t n_end) {
  int64_t n = n_begin;
  for (; n + NR <= n_end; n += NR) kernel.template tile<MT, NR>(m0, n);
  for (; n < n_end; ++n) kernel.template tile<MT, 1>(m0, n);
}

// Every activation row of [0, M) against weight rows [n_begin, n_end).
template <typename Kernel>
void for_each_tile(const Kernel& kernel, int64_t M, int64_t n_begin, int64_t n_end) {
  int64_t m = 0;
  for (; m + 4 <= M; m += 4) tiles_of_weight_rows<4, 2>(kernel, m, n_begin, n_end);
  switch (M - m) {
    case 3: tiles_of_weight_rows<3, 2>(kernel, m, n_begin, n_end); break;
    case 2: tiles_of_weight_rows<2, 4>(kernel, m, n_begin, n_end); break;
    case 1: tiles_of_weight_rows<1, 4>(kernel, m, n_begin, n_end); break;
    default: break;
  }
}

}  // namespace morphserve
