package ai.longrwkv.core.backend.cuda;

import ai.longrwkv.core.backend.Tensor;
import ai.longrwkv.core.tensor.DType;
import ai.longrwkv.core.tensor.HostTensor;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

import java.io.IOException;
import java.io.InputStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * The emulated device itself: that it reports what a GPU would do wrong or undefined (divergent barriers, warp masks,
 * deadlocks, out-of-bounds writes, reads of memory never written, block sizes above __launch_bounds__, argument
 * lists that do not match the kernel) and computes what CUDA defines (shuffles, votes, atomics), in both the fiber and
 * the thread mode; and the backend's host-side defences that only a device can show (out-of-memory recovery for
 * tensors and for GEMM workspaces, size checks before launches, use from any thread).
 */
class EmulatorChecksTest {
    static Path checks;
    static final Map<Boolean, CudaBackend> backends = new HashMap<>();

    @BeforeAll
    static void build() throws IOException {
        checks = Files.createTempDirectory("emu-checks").resolve("emu_checks.cu");
        try (InputStream in = EmulatorChecksTest.class.getResourceAsStream("emu_checks.cu")) {
            Files.copy(in, checks, StandardCopyOption.REPLACE_EXISTING);
        }
        for (boolean threads : new boolean[]{false, true}) backends.put(threads, new CudaBackend(new EmulatedDevice(threads, 1L << 30)));
    }

    @AfterAll
    static void close() {
        backends.values().forEach(CudaBackend::close);
    }

    static Kernel kernel(boolean threads, String name) throws IOException {
        CudaBackend be = backends.get(threads);
        return new Kernel(be.device, ((EmulatedDevice) be.device).externalFunction(checks, name));
    }

    static CudaTensor tensor(boolean threads, float... values) {
        return (CudaTensor) backends.get(threads).upload(new HostTensor(new int[]{values.length}, values));
    }

    static CudaTensor ints(boolean threads, int... values) {
        float[] f = new float[values.length];
        for (int i = 0; i < values.length; i++) f[i] = Float.intBitsToFloat(values[i]);
        return tensor(threads, f);
    }

    static int[] intsOf(boolean threads, Tensor t) {
        float[] f = backends.get(threads).download(t).data();
        int[] out = new int[f.length];
        for (int i = 0; i < f.length; i++) out[i] = Float.floatToRawIntBits(f[i]);
        return out;
    }

    static String failure(boolean threads, String name, int grid, int block, Object... args) {
        IllegalStateException e = assertThrows(IllegalStateException.class, () -> kernel(threads, name).launch(grid, block, 0, args));
        return e.getMessage();
    }

    // ---------------------------------------------------------------- barriers
    @ParameterizedTest(name = "threads={0}")
    @ValueSource(booleans = {false, true})
    void barrierNotReachedByEveryThreadIsReported(boolean threads) {
        try (CudaTensor out = tensor(threads, new float[64])) {
            String m = failure(threads, "barrier_in_branch", 1, 64, out);
            assertTrue(m.contains("__syncthreads") && m.contains("reached by 16 of 64") && m.contains("emu_checks.cu:5"), m);
            m = failure(threads, "early_return_then_barrier", 1, 32, out);
            assertTrue(m.contains("reached by 31 of 32") && m.contains("1 had already returned"), m);
            m = failure(threads, "two_barrier_sites", 1, 32, out);
            assertTrue(m.contains("different barriers") && m.contains("emu_checks.cu:10") && m.contains("emu_checks.cu:11"), m);
        }
    }

    @ParameterizedTest(name = "threads={0}")
    @ValueSource(booleans = {false, true})
    void correctBarrierCodeComputesTheSum(boolean threads) throws IOException {
        float[] in = new float[4 * 256];
        for (int i = 0; i < in.length; i++) in[i] = i % 7;
        try (CudaTensor x = tensor(threads, in); CudaTensor out = tensor(threads, new float[4])) {
            kernel(threads, "block_sum").launch(4, 256, 0, x, out);
            float[] got = backends.get(threads).download(out).data();
            for (int b = 0; b < 4; b++) {
                float want = 0;
                for (int i = 0; i < 256; i++) want += in[b * 256 + i];
                assertEquals(want, got[b], 0f, "block " + b);
            }
        }
    }

    // ---------------------------------------------------------------- warps
    @ParameterizedTest(name = "threads={0}")
    @ValueSource(booleans = {false, true})
    void shufflesAndVotesFollowTheProgrammingGuide(boolean threads) throws IOException {
        int n = 64;
        float[] f = new float[n];
        int[] v = new int[n], p = new int[n];
        for (int i = 0; i < n; i++) { f[i] = i; v[i] = 100 + i; p[i] = (i % 3 == 0 || i >= 32) ? 1 : 0; }
        try (CudaTensor in = tensor(threads, f); CudaTensor sum = tensor(threads, new float[n]);
             CudaTensor iv = ints(threads, v); CudaTensor down = tensor(threads, new float[n]); CudaTensor up = tensor(threads, new float[n]);
             CudaTensor bc = tensor(threads, new float[n]); CudaTensor ip = ints(threads, p); CudaTensor ballot = tensor(threads, new float[n]);
             CudaTensor any = tensor(threads, new float[n]); CudaTensor all = tensor(threads, new float[n])) {
            kernel(threads, "warp_xor_sum").launch(1, n, 0, in, sum);
            float[] s = backends.get(threads).download(sum).data();
            for (int i = 0; i < n; i++) assertEquals(i < 32 ? 496f : 1520f, s[i], "xor butterfly sum of the warp at lane " + i);
            kernel(threads, "warp_down_up_idx").launch(1, n, 0, iv, down, up, bc);
            int[] d = intsOf(threads, down), u = intsOf(threads, up), b = intsOf(threads, bc);
            for (int i = 0; i < n; i++) {
                int lane = i % 32, warp = i - lane;
                assertEquals(lane + 3 < 32 ? v[i + 3] : v[i], d[i], "shfl_down at " + i);
                int seg = lane & ~15;
                assertEquals(lane - 5 >= seg ? v[i - 5] : v[i], u[i], "shfl_up width 16 at " + i);
                assertEquals(v[warp + 7], b[i], "shfl broadcast at " + i);
            }
            kernel(threads, "warp_votes").launch(1, n, 0, ip, ballot, any, all);
            int[] bl = intsOf(threads, ballot), an = intsOf(threads, any), al = intsOf(threads, all);
            int want0 = 0;
            for (int l = 0; l < 32; l++) if (p[l] != 0) want0 |= 1 << l;
            for (int i = 0; i < n; i++) {
                assertEquals(i < 32 ? want0 : -1, bl[i], "ballot at " + i);
                assertEquals(1, an[i], "any at " + i);
                assertEquals(i < 32 ? 0 : 1, al[i], "all at " + i);
            }
        }
    }

    @ParameterizedTest(name = "threads={0}")
    @ValueSource(booleans = {false, true})
    void warpMaskErrorsAreReported(boolean threads) {
        try (CudaTensor out = tensor(threads, new float[32])) {
            String m = failure(threads, "mask_without_caller", 1, 32, out);
            assertTrue(m.contains("not in the mask") && m.contains("lane"), m);
            m = failure(threads, "mask_lanes_missing", 1, 32, out);
            assertTrue(m.contains("never completes") || m.contains("deadlock"), m);
            m = failure(threads, "shuffle_outside_mask", 1, 32, out);
            assertTrue(m.contains("reads lane 20") && m.contains("not in the mask"), m);
            m = failure(threads, "mask_without_caller", 1, 16, out);   // 16-thread block: lanes 16..31 do not exist
            assertTrue(m.contains("not in the mask"), m);
        }
    }

    @ParameterizedTest(name = "threads={0}")
    @ValueSource(booleans = {false, true})
    void mmaSyncNeedsTheWholeWarpAtOneInstruction(boolean threads) {
        // the product itself and its fragment layout: CudaTensorCoreWkvTest (wkv5t_mma_probe against a scalar reference)
        try (CudaTensor out = tensor(threads, new float[32])) {
            String m = failure(threads, "mma_half_warp", 1, 32, out);
            assertTrue(m.contains("never completes") && m.contains("emu_checks.cu"), m);
            m = failure(threads, "mma_two_sites", 1, 32, out);
            assertTrue(m.contains("different calls"), m);
            m = failure(threads, "mma_half_warp", 1, 16, out);       // a 16-thread block has no full warp
            assertTrue(m.contains("does not exist"), m);
        }
    }

    // ---------------------------------------------------------------- memory
    @ParameterizedTest(name = "threads={0}")
    @ValueSource(booleans = {false, true})
    void outOfBoundsWriteIsCaught(boolean threads) throws IOException {
        // its own device: like a GPU after an illegal address, a device with a smashed guard stays failed
        try (CudaBackend be = new CudaBackend(new EmulatedDevice(threads, 1L << 30))) {
            CudaTensor out = (CudaTensor) be.upload(HostTensor.zeros(10));
            Kernel k = new Kernel(be.device, ((EmulatedDevice) be.device).externalFunction(checks, "write_one_past"));
            String m = assertThrows(IllegalStateException.class, () -> k.launch(1, 1, 0, out, 10)).getMessage();
            assertTrue(m.contains("past the end") && m.contains("out-of-bounds write") && m.contains("write_one_past"), m);
        }
    }

    @Test
    void memoryNeverWrittenReadsAsNaN() {
        CudaBackend be = backends.get(false);
        try (CudaTensor fresh = new CudaTensor(be, new int[]{100})) {
            for (float f : be.download(fresh).data()) assertTrue(Float.isNaN(f), "unwritten device memory must be poisoned");
        }
    }

    @Test
    void hostCopiesOutsideAnAllocationAreRefused() {
        CudaBackend be = backends.get(false);
        try (CudaTensor a = tensor(false, new float[8]); CudaTensor b = tensor(false, new float[8])) {
            IllegalStateException e = assertThrows(IllegalStateException.class, () -> be.device.copyDtoD(a.ptr(), b.ptr(4), 32));
            assertTrue(e.getMessage().contains("outside every allocation"), e.getMessage());
        }
    }

    @Test
    void outOfMemoryFreesThePoolAndRetriesForTensorsAndGemmWorkspaces() {
        long limit = 8L << 20;
        try (CudaBackend be = new CudaBackend(new EmulatedDevice(false, limit))) {
            // 6 MiB of pooled (closed) tensors, then a 4 MiB tensor: only fits after the pool is returned
            be.zeros(6 << 18).close();
            assertEquals(6L << 20, be.pooledBytes());
            try (Tensor big = be.zeros(4 << 18)) {
                assertEquals(0, be.pooledBytes(), "the pool was freed to make room");
            }
            // now 4 MiB pooled + 3.5 MiB live: the GEMM's 1 MiB workspace only fits after the pool is returned
            assertEquals(4L << 20, be.pooledBytes());
            try (Tensor a = be.upload(HostTensor.zeros(448, 1024)); Tensor b = be.upload(HostTensor.zeros(1024, 448));
                 Tensor c = be.zeros(448, 448)) {
                be.matmul(a, false, b, false, c, 1f, 0f);
                assertEquals(0, be.pooledBytes(), "the pool was freed for cuBLAS's workspace");
            }
        }
    }

    // ---------------------------------------------------------------- cublasGemmEx
    /** gemmEx refuses what cuBLAS refuses and reads only inside the operands' allocations, like sgemm. */
    @Test
    void gemmExRefusesWhatCublasRefusesAndStaysInsideTheOperands() {
        try (CudaBackend be = new CudaBackend(new EmulatedDevice(false, 1L << 30));
             CudaTensor a = (CudaTensor) be.zeros(DType.BF16, 8, 8); CudaTensor af = (CudaTensor) be.zeros(8, 8);
             CudaTensor c = (CudaTensor) be.zeros(8, 8)) {
            Device d = be.device;
            String m = assertThrows(IllegalStateException.class, () -> d.gemmEx(false, false, 8, 8, 8, 1f, a.ptr(), DType.BF16, 8,
                    af.ptr(), DType.F32, 8, 0f, c.ptr(), 8)).getMessage();
            assertTrue(m.contains("CUBLAS_STATUS_NOT_SUPPORTED"), m);
            // lda 9 with 8 columns reads 9 * 7 + 8 = 71 bf16 values of a 64-value allocation
            m = assertThrows(IllegalStateException.class, () -> d.gemmEx(false, false, 8, 8, 8, 1f, a.ptr(), DType.BF16, 9,
                    a.ptr(), DType.BF16, 8, 0f, c.ptr(), 8)).getMessage();
            assertTrue(m.contains("cublasGemmEx A") && m.contains("outside every allocation"), m);
            m = assertThrows(IllegalStateException.class, () -> d.gemmEx(false, false, 8, 8, 8, 1f, a.ptr(), DType.BF16, 7,
                    a.ptr(), DType.BF16, 8, 0f, c.ptr(), 8)).getMessage();
            assertTrue(m.contains("CUBLAS_STATUS_INVALID_VALUE"), m);
            // in bounds: fine, and beta = 0 ignores what C held (NaN)
            be.device.memsetD32(c.ptr(), 0x7fc00000, 64);
            assertTrue(d.gemmEx(false, false, 8, 8, 8, 1f, a.ptr(), DType.BF16, 8, a.ptr(), DType.BF16, 8, 0f, c.ptr(), 8));
            for (float v : be.download(c).data()) assertEquals(0f, v);
        }
    }

    /** Freeing the pool waits for queued work first (a kernel may still read a pooled buffer) and checks each free. */
    @Test
    void trimmingThePoolSynchronisesBeforeItFrees() {
        List<String> calls = new ArrayList<>();
        EmulatedDevice real = new EmulatedDevice(false, 1L << 30);
        Device logged = (Device) java.lang.reflect.Proxy.newProxyInstance(Device.class.getClassLoader(), new Class<?>[]{Device.class},
                (proxy, method, args) -> {
                    calls.add(method.getName());
                    try {
                        return method.invoke(real, args);
                    } catch (java.lang.reflect.InvocationTargetException e) {
                        throw e.getCause();
                    }
                });
        try (CudaBackend be = new CudaBackend(logged)) {
            be.zeros(1000).close();
            be.zeros(2000).close();
            calls.clear();
            be.trimPool();
            assertEquals(List.of("synchronize", "free", "free"), calls);
            // a free the device refuses is an error, not silence
            DeviceMemory memory = new DeviceMemory(logged, "test");
            memory.free(12345L, 64);
            IllegalStateException e = assertThrows(IllegalStateException.class, memory::trimPool);
            assertTrue(e.getMessage().contains("not an allocation"), e.getMessage());
        }
    }

    // ---------------------------------------------------------------- launches
    @Test
    void launchBoundsAndArgumentListsAreEnforced() throws IOException {
        try (CudaTensor out = tensor(false, new float[128])) {
            IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> kernel(false, "bounded_64").launch(1, 128, 0, out));
            assertTrue(e.getMessage().contains("at most 64"), e.getMessage());
            kernel(false, "bounded_64").launch(1, 64, 0, out);
            e = assertThrows(IllegalArgumentException.class, () -> kernel(false, "write_one_past").launch(1, 1, 0, out));
            assertTrue(e.getMessage().contains("takes 2 arguments, launched with 1"), e.getMessage());
            e = assertThrows(IllegalArgumentException.class, () -> kernel(false, "write_one_past").launch(1, 1, 0, out, 10L));
            assertTrue(e.getMessage().contains("argument 1 is 4 bytes, given a 8-byte Long"), e.getMessage());
        }
        // the backend's own kernels: fill_f32 takes (float*, float, long long)
        CudaBackend be = backends.get(false);
        Kernel fill = new Kernel(be.device, be.device.function("elementwise", "fill_f32"));
        try (CudaTensor t = tensor(false, new float[4])) {
            IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> fill.launch(1, 32, 0, t, 1f, 4));
            assertTrue(e.getMessage().contains("argument 2 is 8 bytes, given a 4-byte Integer"), e.getMessage());
            e = assertThrows(IllegalArgumentException.class, () -> fill.launch(1, 32, 0, t, 1f));
            assertTrue(e.getMessage().contains("takes 3 arguments"), e.getMessage());
        }
    }

    @ParameterizedTest(name = "threads={0}")
    @ValueSource(booleans = {false, true})
    void atomicsAndTrap(boolean threads) throws IOException {
        try (CudaTensor counter = ints(threads, 0); CudaTensor sum = tensor(threads, 0f); CudaTensor out = tensor(threads, new float[32])) {
            kernel(threads, "count_atomically").launch(3, 96, 0, counter, sum);
            assertEquals(288, intsOf(threads, counter)[0]);
            assertEquals(144f, backends.get(threads).download(sum).data()[0]);
            String m = failure(threads, "traps", 1, 32, out);
            assertTrue(m.contains("__trap()") && m.contains("thread (5,0,0)"), m);
        }
    }

    @Test
    void outputsTooSmallAreRefusedBeforeTheLaunch() {
        CudaBackend be = backends.get(false);
        int h = 2, n = 8, steps = 5, c = h * n;
        try (Tensor r = be.zeros(steps, c); Tensor w = be.zeros(h, n); Tensor s0 = be.zeros(h, n, n);
             Tensor smallState = be.zeros(h, n, n - 1); Tensor dr = be.zeros(steps, c); Tensor dw = be.zeros(h, n);
             Tensor dwSmall = be.zeros(h, n - 1); Tensor x = be.zeros(3, 16); Tensor wn = be.zeros(16); Tensor stats = be.zeros(2)) {
            assertTrue(assertThrows(IllegalArgumentException.class, () ->
                    be.wkvBackward(r, r, r, w, w, s0, r, smallState, dr, dr, dr, dw, dw)).getMessage().contains("dState"));
            assertTrue(assertThrows(IllegalArgumentException.class, () ->
                    be.wkvBackward(r, r, r, w, w, s0, r, s0, dr, dr, dr, dwSmall, dw)).getMessage().contains("dw"));
            assertTrue(assertThrows(IllegalArgumentException.class, () ->
                    be.norm(x, wn, wn, 1, 1e-5f, x, stats, stats)).getMessage().contains("mean"));
            assertTrue(assertThrows(IllegalArgumentException.class, () ->
                    be.siluBackward(x, x, wn)).getMessage().contains("dx"));
        }
    }

    @Test
    void anyThreadCanUseTheBackend() throws Exception {
        CudaBackend be = new CudaBackend(new EmulatedDevice(false, 1L << 30));
        ExecutorService pool = Executors.newFixedThreadPool(4);
        try {
            List<Future<float[]>> results = new ArrayList<>();
            for (int i = 0; i < 8; i++) {
                final float value = i;
                // each task allocates, looks kernels up for the first time and launches, on a thread that never used CUDA
                results.add(pool.submit(() -> {
                    try (Tensor t = be.zeros(1000)) {
                        be.fill(t, value);
                        be.scale(t, 2f);
                        return be.download(t).data();
                    }
                }));
            }
            for (int i = 0; i < 8; i++) for (float f : results.get(i).get()) assertEquals(2f * i, f);
        } finally {
            pool.shutdown();
            be.close();
        }
    }

    @Test
    void contextBindingRebindsWhenSomethingElseBoundAnotherContext() {
        // a fake driver: the current context per thread, as cuCtxGetCurrent/cuCtxSetCurrent keep it
        ThreadLocal<Long> current = ThreadLocal.withInitial(() -> 0L);
        int[] sets = {0};
        ContextBinding.Driver driver = new ContextBinding.Driver() {
            @Override public long current() { return current.get(); }
            @Override public void setCurrent(long context) { sets[0]++; current.set(context); }
        };
        ContextBinding ours = new ContextBinding(driver, 42);
        ours.bind();
        assertEquals(42L, current.get());
        ours.bind();
        assertEquals(1, sets[0], "no driver call when the context is already current");
        new ContextBinding(driver, 7).bind();             // another library binds its context on this thread
        ours.bind();
        assertEquals(42L, current.get(), "a per-thread 'already bound' flag would leave the other context current here");
    }
}
