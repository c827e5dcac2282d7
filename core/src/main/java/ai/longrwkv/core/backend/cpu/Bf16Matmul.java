package ai.longrwkv.core.backend.cpu;

import org.bytedeco.javacpp.FloatPointer;
import org.bytedeco.javacpp.Pointer;
import org.bytedeco.dnnl.dnnl_engine;
import org.bytedeco.dnnl.dnnl_exec_arg_t;
import org.bytedeco.dnnl.dnnl_memory;
import org.bytedeco.dnnl.dnnl_memory_desc;
import org.bytedeco.dnnl.dnnl_post_ops;
import org.bytedeco.dnnl.dnnl_primitive;
import org.bytedeco.dnnl.dnnl_primitive_attr;
import org.bytedeco.dnnl.dnnl_primitive_desc;
import org.bytedeco.dnnl.dnnl_stream;

import java.util.LinkedHashMap;
import java.util.Map;

import static org.bytedeco.dnnl.global.dnnl.*;

/**
 * bf16 x bf16 -> fp32 matrix products through oneDNN's matmul primitive: bf16 inputs, fp32 accumulation and output,
 * {@code C = alpha op(A) op(B) + beta C} in row-major storage, the contract of cublasGemmEx with bf16 A and B on the
 * CUDA backend. Why oneDNN: OpenBLAS as bytedeco ships it (0.3.31) exports no bf16 GEMM ({@code sbgemm}), and on a CPU
 * with AVX512-BF16 (vdpbf16ps: two products per lane per instruction) or AMX oneDNN's bf16 kernels run at twice the
 * fp32 sgemm rate or more (measured on the 2-core AMD EPYC dev machine, 1024 x 768 x 3072: 424-449 GFLOP/s bf16 against
 * 145-214 fp32; README "CPU and bf16").
 *
 * <p>{@link #native_()} says whether the CPU runs bf16 products natively; on a CPU without, oneDNN would emulate them
 * and the backend widens bf16 operands into the fp32 sgemm instead ({@link CpuBackend.Bf16Products}).
 *
 * <p>A primitive and its operands' memory descriptors are made once per (shape, transposes, leading dimensions, alpha,
 * beta) and kept (oneDNN's own primitive cache would still pay for the descriptors each call); the calls of one model
 * are a few dozen shapes.
 */
final class Bf16Matmul {
    private Bf16Matmul() { }

    private static final int CACHE_CAPACITY = 512;

    private static dnnl_engine engine;
    private static dnnl_stream stream;
    private static final Map<Key, Product> primitives = new LinkedHashMap<>(64, 0.75f, true) {
        @Override protected boolean removeEldestEntry(Map.Entry<Key, Product> e) {
            if (size() <= CACHE_CAPACITY) return false;
            e.getValue().destroy();
            return true;
        }
    };

    private record Key(boolean transA, boolean transB, int m, int n, int k, int lda, int ldb, int ldc, float alpha, float beta) { }

    /** A made primitive with the memory descriptors of its operands, which every call of it binds data to. */
    private record Product(dnnl_primitive primitive, dnnl_memory_desc a, dnnl_memory_desc b, dnnl_memory_desc c) {
        void destroy() {
            dnnl_primitive_destroy(primitive);
            dnnl_memory_desc_destroy(a);
            dnnl_memory_desc_destroy(b);
            dnnl_memory_desc_destroy(c);
        }
    }

    private static synchronized void init() {
        if (engine != null) return;
        dnnl_engine e = new dnnl_engine();
        check(dnnl_engine_create(e, dnnl_cpu, 0), "engine");
        dnnl_stream s = new dnnl_stream();
        check(dnnl_stream_create(s, e, dnnl_stream_default_flags), "stream");
        engine = e;
        stream = s;
    }

    /**
     * True when oneDNN loads and the CPU has bf16 dot-product instructions it uses (AVX512-BF16, AMX-BF16 or
     * AVX2-VNNI-2). False, not an error, where the native library is missing (a bundle without it) or cannot load.
     */
    static boolean native_() {
        try {
            int isa = dnnl_get_effective_cpu_isa();
            return (isa & dnnl_cpu_isa_avx512_core_bf16) == dnnl_cpu_isa_avx512_core_bf16
                    || (isa & dnnl_cpu_isa_avx2_vnni_2) == dnnl_cpu_isa_avx2_vnni_2;
        } catch (LinkageError e) {   // UnsatisfiedLinkError, or NoClassDefFoundError after a failed first load
            return false;
        }
    }

    private static Boolean runs;

    /**
     * True when oneDNN can make a bf16 matmul primitive on this CPU at all: natively, or emulated on AVX-512; false
     * where it has no bf16 kernel (an AVX2-only CPU such as AMD Zen 3: status 3, unimplemented) or does not load.
     */
    static synchronized boolean runs() {
        if (runs == null) {
            try {
                init();
                create(new Key(false, false, 2, 2, 2, 2, 2, 2, 1f, 0f)).destroy();
                runs = true;
            } catch (IllegalStateException | LinkageError e) {
                runs = false;
            }
        }
        return runs;
    }

    /** The ISA oneDNN dispatches to on this CPU, as its enum value (for the backend's name). */
    static String isa() {
        int isa = dnnl_get_effective_cpu_isa();
        if ((isa & dnnl_cpu_isa_avx512_core_amx) == dnnl_cpu_isa_avx512_core_amx) return "AMX";
        if ((isa & dnnl_cpu_isa_avx512_core_bf16) == dnnl_cpu_isa_avx512_core_bf16) return "AVX512-BF16";
        if ((isa & dnnl_cpu_isa_avx2_vnni_2) == dnnl_cpu_isa_avx2_vnni_2) return "AVX2-VNNI-2";
        return "no bf16 instructions (isa 0x" + Integer.toHexString(isa) + ")";
    }

    /**
     * Row-major C[m, n] = alpha op(A)[m, k] op(B)[k, n] + beta C, with A, B bf16 at the given addresses (op = transpose
     * when the flag is set; lda, ldb: the stored row lengths) and C fp32 with row length ldc. With beta = 0 C is not
     * read (it may hold anything), as in BLAS.
     */
    static synchronized void gemm(boolean transA, boolean transB, int m, int n, int k, float alpha,
                                  Pointer a, int lda, Pointer b, int ldb, float beta, FloatPointer c, int ldc) {
        init();
        Key key = new Key(transA, transB, m, n, k, lda, ldb, ldc, alpha, beta);
        Product p = primitives.get(key);
        if (p == null) {
            p = create(key);
            primitives.put(key, p);
        }
        dnnl_memory am = new dnnl_memory(), bmem = new dnnl_memory(), cm = new dnnl_memory();
        dnnl_exec_arg_t args = new dnnl_exec_arg_t(3);
        try {
            check(dnnl_memory_create(am, p.a(), engine, a), "memory");
            check(dnnl_memory_create(bmem, p.b(), engine, b), "memory");
            check(dnnl_memory_create(cm, p.c(), engine, c), "memory");
            args.position(0).arg(DNNL_ARG_SRC).memory(am);
            args.position(1).arg(DNNL_ARG_WEIGHTS).memory(bmem);
            args.position(2).arg(DNNL_ARG_DST).memory(cm);
            args.position(0);
            check(dnnl_primitive_execute(p.primitive(), stream, 3, args), "execute");
            check(dnnl_stream_wait(stream), "wait");
        } finally {
            dnnl_memory_destroy(am);
            dnnl_memory_destroy(bmem);
            dnnl_memory_destroy(cm);
            args.close();
        }
    }

    private static Product create(Key key) {
        dnnl_memory_desc ad = desc(dnnl_bf16, key.m, key.k, key.transA, key.lda),
                bd = desc(dnnl_bf16, key.k, key.n, key.transB, key.ldb), cd = desc(dnnl_f32, key.m, key.n, false, key.ldc);
        dnnl_primitive_attr attr = new dnnl_primitive_attr();
        dnnl_post_ops ops = new dnnl_post_ops();
        dnnl_primitive_desc pd = new dnnl_primitive_desc();
        try {
            check(dnnl_primitive_attr_create(attr), "attr");
            check(dnnl_post_ops_create(ops), "post ops");
            // post-ops run in order on the fp32 accumulator: alpha * acc (an eltwise "linear" op: one fp32 rounding,
            // as BLAS's alpha * acc), then + beta * old C (the "sum" op); a scale tensor per call is not needed
            if (key.alpha != 1f) check(dnnl_post_ops_append_eltwise(ops, dnnl_eltwise_linear, key.alpha, 0f), "alpha");
            if (key.beta != 0f) check(dnnl_post_ops_append_sum(ops, key.beta, 0, dnnl_data_type_undef), "beta");
            check(dnnl_primitive_attr_set_post_ops(attr, ops), "post ops");
            check(dnnl_matmul_primitive_desc_create(pd, engine, ad, bd, null, cd, attr), "matmul " + key);
            dnnl_primitive p = new dnnl_primitive();
            check(dnnl_primitive_create(p, pd), "primitive");
            return new Product(p, ad, bd, cd);
        } catch (RuntimeException e) {
            dnnl_memory_desc_destroy(ad);
            dnnl_memory_desc_destroy(bd);
            dnnl_memory_desc_destroy(cd);
            throw e;
        } finally {
            dnnl_primitive_desc_destroy(pd);
            dnnl_post_ops_destroy(ops);
            dnnl_primitive_attr_destroy(attr);
        }
    }

    /** A [rows, cols] matrix stored row-major with row length ld, or (transposed) its transpose stored so. */
    private static dnnl_memory_desc desc(int dtype, int rows, int cols, boolean transposed, int ld) {
        dnnl_memory_desc d = new dnnl_memory_desc();
        long[] dims = {rows, cols};
        long[] strides = transposed ? new long[]{1, ld} : new long[]{ld, 1};
        check(dnnl_memory_desc_create_with_strides(d, 2, dims, dtype, strides), "memory desc");
        return d;
    }

    private static void check(int status, String what) {
        if (status != dnnl_success) throw new IllegalStateException("oneDNN " + what + " failed with status " + status);
    }
}
