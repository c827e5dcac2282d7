package ai.longrwkv.core.backend.cpu;

import org.bytedeco.javacpp.FloatPointer;
import org.bytedeco.openblas.global.openblas;

/**
 * fp32 products, row-major C = alpha op(A) op(B) + beta C, on OpenBLAS kept single-threaded: a product large enough
 * to share ({@link #SPLIT_FLOPS}) is cut into one block of C's rows (or columns) per core, each block one
 * single-threaded sgemm, run on the backend's threads ({@link CpuPool}) like every other parallel op; a smaller product
 * is one call on the calling thread.
 *
 * <p>Why not OpenBLAS's own threads: they are a second pool next to the backend's. On the 2-core dev VM its worker
 * sleeps after each product (OPENBLAS_THREAD_TIMEOUT, which the launcher sets low so that it does not spin on the
 * core the Java ops need), and waking it again cost the tiny L4-C128 model ~0.9 ms per product: with
 * OPENBLAS_NUM_THREADS=1 its training step ran 1.6x faster (7,750 against 4,760 tok/s, medians of 4 alternating
 * runs). Changing OpenBLAS's thread count per call is no way out: openblas_set_num_threads took ~0.23 ms a call.
 *
 * <p>Determinism: the cut depends only on the shape and the thread count ({@link CpuPool}), and each element of C is
 * computed by one sgemm call (over the whole k, except where the bf16 widening path of CpuBackend.matmul accumulates
 * over blocks of k, in a fixed order), so a run is the same bits every time with the same thread count. Not
 * across thread counts: OpenBLAS rounds the rows of a 112-row block differently from the same rows of a 203-row call
 * (SgemmAndPoolTest found it), as its own threads, which cut products by their count, did before.
 */
final class Sgemm {
    private Sgemm() { }

    /** Products below this many FLOPs (2 m n k) run as one call (2^24: ~1024 x 128 x 64; larger ones measured 2x faster cut in two on 2 cores). */
    static final long SPLIT_FLOPS = Long.getLong("longrwkv.sgemm.splitFlops", 1L << 24);

    /** Rows (or columns) of C per block are a multiple of this (the sgemm kernels' unroll). */
    private static final int ALIGN = 16;


    /**
     * -Dlongrwkv.sgemm.openblasThreads=true: leave OpenBLAS its own threads and never cut (the behaviour before, for
     * side-by-side measurements on other machines).
     */
    static final boolean OPENBLAS_THREADS = Boolean.getBoolean("longrwkv.sgemm.openblasThreads");

    private static volatile boolean singleThreaded;

    private static synchronized void init() {
        if (singleThreaded) return;
        // once: the call costs ~0.23 ms; later products run on the threads that call them
        org.bytedeco.openblas.presets.openblas_nolapack.blas_set_num_threads(1);
        singleThreaded = true;
    }

    static void gemm(boolean transA, boolean transB, int m, int n, int k, float alpha, FloatPointer a, int lda,
                     FloatPointer b, int ldb, float beta, FloatPointer c, int ldc) {
        int parts = OPENBLAS_THREADS || 2.0 * m * n * k < SPLIT_FLOPS ? 1 : CpuPool.threads();
        gemm(transA, transB, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc, parts);
    }

    /** As above, cut into at most {@code maxParts} blocks (tests: every cut matches the reference, call after call). */
    static void gemm(boolean transA, boolean transB, int m, int n, int k, float alpha, FloatPointer a, int lda,
                     FloatPointer b, int ldb, float beta, FloatPointer c, int ldc, int maxParts) {
        if (!singleThreaded && !OPENBLAS_THREADS) init();
        int ta = transA ? openblas.CblasTrans : openblas.CblasNoTrans, tb = transB ? openblas.CblasTrans : openblas.CblasNoTrans;
        boolean splitRows = m >= n;
        int dim = splitRows ? m : n;
        int parts = Math.min(maxParts, (dim + ALIGN - 1) / ALIGN);
        if (parts <= 1) {
            openblas.cblas_sgemm(openblas.CblasRowMajor, ta, tb, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
            return;
        }
        int per = ((dim + parts - 1) / parts + ALIGN - 1) / ALIGN * ALIGN;   // ceil(dim / parts), aligned up: covers dim
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
