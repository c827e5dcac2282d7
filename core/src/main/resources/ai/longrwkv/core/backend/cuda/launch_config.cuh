// Launch configuration shared by the kernels and the host: CudaBackend reads these numbers from this file (the one
// place they are written), and the kernels size their shared arrays with them and refuse other block sizes.
#pragma once
#define LONGRWKV_ELEMENTWISE_THREADS 256   // grid-stride elementwise kernels
#define LONGRWKV_SUMSQ_THREADS 256         // sum_squares_partial_f32: block size (a power of two)
#define LONGRWKV_SUMSQ_MAX_BLOCKS 256      // sum_squares_partial_f32: at most this many partial sums
#define LONGRWKV_NORM_MAX_THREADS 256      // norm kernels: a power of two from 32 up to this
#define LONGRWKV_CE_THREADS 1024           // cross_entropy_f32: block size (a power of two)
#define LONGRWKV_WKV_CHUNK_LEN 16          // wkv5_chunked.cu: tokens per chunk (shared memory: ~30 KiB per block at N = 64)
#define LONGRWKV_WKV_CHUNK_THREADS 128     // wkv5_chunked.cu: block size (at least 2 * the largest head size, 64)
