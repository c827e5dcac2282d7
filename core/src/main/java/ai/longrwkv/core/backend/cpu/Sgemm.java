package ai.longrwkv.core.backend.cpu;

import org.bytedeco.javacpp.FloatPointer;
import org.bytedeco.openblas.global.openblas;

/**
 * fp32 products, row-major C = alpha op(A) op(B) + beta C, on OpenBLAS kept single-threaded: a product large enough
 * to share ({@link #SPLIT_FLOPS}) is cut into one block of C's rows (or columns) per core, each block one
 * single-threaded sgemm, run on the same fork-join pool as every other parallel op of the backend; a smaller product
 * is one call on the calling thread.
 *
 * <p>Why not OpenBLAS's own threads: they are a second pool next to the backend's. On the 2-core dev VM its worker
 * sleeps after each product (OPENBLAS_THREAD_TIMEOUT, which the launcher sets low so that it does not spin on the
 * core the Java ops need), and waking it again cost the tiny L4-C128 model ~0.9 ms per product: with
 * OPENBLAS_NUM_THREADS=1 its training step ran 1.6x faster (7,750 against 4,760 tok/s, medians of 4 alternating
 * runs). Changing OpenBLAS's thread count per call is no way out: openblas_set_num_threads took ~0.23 ms a call.
 *
 * <p>Determinism: the cut depends only on the shape and the core count, and each element of C is computed by one
 * sgemm call over the whole k, so results are the same bits in every run.
 */
final class Sgemm {
    private Sgemm() { }

    /** Products below this many FLOPs (2 m n k) run as one call; 2^28: above the tiny model's, below the 0.2B's. */
    static final long SPLIT_FLOPS = Long.getLong("longrwkv.sgemm.splitFlops", 1L << 28);

    /** Rows (or columns) of C per block are a multiple of this (the sgemm kernels' unroll). */
    private static final int ALIGN = 16;

    /** Blocks a large product is cut into: one per core the fork-join pool and the caller have. */
    private static final int PARTS = java.util.concurrent.ForkJoinPool.getCommonPoolParallelism() + 1;

    private static boolean singleThreaded;

    private static synchronized void init() {
        if (singleThreaded) return;
        // once: the call costs ~0.23 ms; later products run on the threads that call them
        org.bytedeco.openblas.presets.openblas_nolapack.blas_set_num_threads(1);
        singleThreaded = true;
    }

    static void gemm(boolean transA, boolean transB, int m, int n, int k, float alpha, FloatPointer a, int lda,
                     FloatPointer b, int ldb, float beta, FloatPointer c, int ldc) {
        if (!singleThreaded) init();
        int ta = transA ? openblas.CblasTrans : openblas.CblasNoTrans, tb = transB ? openblas.CblasTrans : openblas.CblasNoTrans;
        boolean splitRows = m >= n;
        int dim = splitRows ? m : n;
        int parts = 2.0 * m * n * k < SPLIT_FLOPS ? 1 : Math.min(PARTS, (dim + ALIGN - 1) / ALIGN);
        if (parts <= 1) {
            openblas.cblas_sgemm(openblas.CblasRowMajor, ta, tb, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
            return;
        }
        int per = (dim / parts + ALIGN - 1) / ALIGN * ALIGN;
        Blocks.parallelFor(parts, p -> {
            int start = p * per, len = Math.min(per, dim - start);
            if (len <= 0) return;
            if (splitRows) {
                // rows start..start+len of C and of op(A): A's rows, or (transposed) its columns
                FloatPointer ap = transA ? a.getPointer(start) : a.getPointer((long) start * lda);
                openblas.cblas_sgemm(openblas.CblasRowMajor, ta, tb, len, n, k, alpha, ap, lda, b, ldb, beta,
                        c.getPointer((long) start * ldc), ldc);
            } else {
                // columns start..start+len of C and of op(B): B's columns, or (transposed) its rows
                FloatPointer bp = transB ? b.getPointer((long) start * ldb) : b.getPointer(start);
                openblas.cblas_sgemm(openblas.CblasRowMajor, ta, tb, m, len, k, alpha, a, lda, bp, ldb, beta,
                        c.getPointer(start), ldc);
            }
        });
    }
}
