package ai.longrwkv.core.backend.cuda;

import ai.longrwkv.core.backend.Backend;
import ai.longrwkv.core.backend.Backends;
import ai.longrwkv.core.backend.Tensor;
import ai.longrwkv.core.dist.CollectiveException;
import ai.longrwkv.core.dist.Communicator;
import ai.longrwkv.core.tensor.DType;
import ai.longrwkv.core.tensor.HostTensor;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.Assumptions;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;

import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Random;

import static org.junit.jupiter.api.Assertions.*;

/**
 * The real NCCL path (scripts/gpu-check.sh): a 1-rank communicator on the GPU exercising every call, each on a view
 * inside a larger tensor whose other elements must stay as they were (a wrong element type or count in an NCCL call
 * moves the wrong number of bytes, which shows there), and, where the machine has several GPUs, 2+ ranks on threads
 * against the host's sums. Runs on the device {@code -Dlongrwkv.parity.device} names, default {@code cuda}: skipped
 * with the reason where there is no GPU or no libnccl.so.2; {@code emulated} (gpu-check.sh --emulated) runs the same
 * assertions on the emulation, which is how this class itself is tested without a GPU.
 */
class NcclGpuTest {
    static final long TIMEOUT = 60_000;
    static Backend gpu;
    static String device;

    /** Why the tests cannot run here (no GPU, no libnccl.so.2), or null. */
    static String unavailable;

    @BeforeAll
    static void start() {
        device = System.getProperty("longrwkv.parity.device", "cuda");
        try {
            gpu = Backends.create(device);
            gpu.newCommunicatorId();
        } catch (IllegalArgumentException e) {
            unavailable = (gpu == null ? "no GPU: " : "") + e.getMessage();   // "libnccl.so.2 not found: ..."
            if (gpu != null) gpu.close();
            gpu = null;
        }
    }

    /** Each test skips itself (so that a runner counts it as skipped, with the reason). */
    static void requireNccl() {
        Assumptions.assumeTrue(unavailable == null, unavailable);
    }

    @AfterAll
    static void stop() {
        if (gpu != null) gpu.close();
    }

    static float[] random(long seed, int n) {
        Random rnd = new Random(seed);
        float[] v = new float[n];
        for (int i = 0; i < n; i++) v[i] = Float.intBitsToFloat(Float.floatToRawIntBits((float) rnd.nextGaussian()) & 0xffff0000);
        return v;
    }

    static void assertBits(float[] expected, float[] actual, String what) {
        assertEquals(expected.length, actual.length, what);
        for (int i = 0; i < expected.length; i++) {
            if (Float.floatToRawIntBits(expected[i]) != Float.floatToRawIntBits(actual[i])) {
                fail(what + ": element " + i + " is " + actual[i] + ", expected " + expected[i]);
            }
        }
    }

    /** rows [1, 1 + count) of a [count + 2, cols] tensor: the rows around it are guards that must not change. */
    static Tensor guarded(DType dt, float[] inside, int cols, long seed) {
        int rows = inside.length / cols + 2;
        float[] all = random(seed, rows * cols);
        System.arraycopy(inside, 0, all, cols, inside.length);
        return gpu.upload(new HostTensor(new int[]{rows, cols}, all), dt);
    }

    @Test
    void oneRankRunsEveryCall() {
        requireNccl();
        byte[] id = gpu.newCommunicatorId();
        assertEquals(128, id.length);
        int cols = 256, rows = 64, n = rows * cols;
        try (Communicator c = gpu.communicator(id, 0, 1, TIMEOUT)) {
            assertEquals(0, c.rank());
            assertEquals(1, c.size());
            for (DType dt : DType.values()) {
                float[] v = random(1, n);
                try (Tensor t = guarded(dt, v, cols, 2)) {
                    float[] before = gpu.download(t).data();
                    Tensor view = gpu.rows(t, 1, rows);
                    if (dt == DType.F32) {
                        c.allReduceSum(view);
                        c.reduceSum(view, 0);
                    }
                    c.broadcast(view, 0);
                    assertBits(before, gpu.download(t).data(), dt + " allReduce/reduce/broadcast of one rank, and the guard rows");
                    try (Tensor out = guarded(dt, new float[n], cols, 3)) {
                        float[] expected = gpu.download(out).data();
                        System.arraycopy(v, 0, expected, cols, n);
                        c.allGather(view, gpu.rows(out, 1, rows));
                        assertBits(expected, gpu.download(out).data(), dt + " allGather");
                        if (dt == DType.F32) {
                            try (Tensor rs = guarded(dt, new float[n], cols, 4)) {
                                float[] expectedRs = gpu.download(rs).data();
                                System.arraycopy(v, 0, expectedRs, cols, n);
                                c.reduceScatterSum(view, gpu.rows(rs, 1, rows));
                                assertBits(expectedRs, gpu.download(rs).data(), "reduceScatterSum");
                            }
                        }
                    }
                }
            }
            // queued calls (the trainer's bucketed reduction): on a stream of their own, after the compute queued before
            // them; the compute after the await sees their result. x2 before, x0.5 after: exact if the order holds
            float[] q0 = random(7, n);
            try (Tensor q = gpu.upload(new HostTensor(new int[]{n}, q0))) {
                gpu.scale(q, 2f);
                Communicator.Queued a = c.allReduceSumQueued(q);
                Communicator.Queued b = c.reduceSumQueued(q, 0);
                c.await(a);
                c.await(b);
                gpu.scale(q, 0.5f);
                assertBits(q0, gpu.download(q).data(), "queued allReduce/reduce between two kernels");
                c.allReduceSumQueued(q);
                c.broadcast(q, 0);   // a call that is not queued waits for the queued ones first
                assertBits(q0, gpu.download(q).data(), "queued, then a plain call");
            }
            double[] d = {1e300, -2.5, Math.PI};
            assertArrayEquals(d, c.allReduceSum(d));
            c.barrier();
            // a large transfer: 16 M values (64 MB)
            float[] big = random(5, 16 << 20);
            try (Tensor t = gpu.upload(new HostTensor(new int[]{big.length}, big))) {
                c.allReduceSum(t);
                assertBits(big, gpu.download(t).data(), "64 MB allReduce");
            }
        }
        // a second communicator after the first one's destroy
        try (Communicator c = gpu.communicator(gpu.newCommunicatorId(), 0, 1, TIMEOUT); Tensor t = gpu.zeros(4)) {
            c.allReduceSum(t);
            c.abort("testing abort");
            CollectiveException e = assertThrows(CollectiveException.class, () -> c.allReduceSum(t));
            assertTrue(e.getMessage().contains("testing abort"), e.getMessage());
        }
    }

    /**
     * 2 or more ranks, one thread each: every GPU of the machine on the real device (a machine with one GPU prints
     * that it has nothing to check and passes, so that gpu-check.sh's "nothing skipped" holds on one GPU), 2 emulated
     * devices on the emulated one.
     */
    @Test
    void severalRanksSumAcrossDevicesWhereTheMachineHasThem() throws Exception {
        requireNccl();
        boolean real = device.equals("cuda");
        int count = real ? gpuCount() : 2;
        if (count < 2) {
            System.out.println("NCCL multi-GPU: this machine has " + count + " GPU, nothing to check");
            return;
        }
        byte[] id = gpu.newCommunicatorId();
        int n = 1 << 18;
        List<Thread> threads = new ArrayList<>();
        float[][] results = new float[count][], queued = new float[count][];
        Throwable[] errors = new Throwable[count];
        for (int r = 0; r < count; r++) {
            int rank = r;
            Thread t = new Thread(() -> {
                try (CudaBackend b = real ? new CudaBackend(new DriverDevice(rank)) : CudaBackend.emulated();
                     Communicator c = b.communicator(id, rank, count, TIMEOUT);
                     Tensor x = b.upload(new HostTensor(new int[]{n}, random(10 + rank, n)));
                     Tensor y = b.upload(new HostTensor(new int[]{n}, random(10 + rank, n)))) {
                    c.allReduceSum(x);
                    results[rank] = b.download(x).data();
                    // queued: the sum on the communication stream, between two kernels of the compute stream
                    b.scale(y, 2f);
                    Communicator.Queued q = c.allReduceSumQueued(y);
                    c.await(q);
                    b.scale(y, 0.5f);
                    queued[rank] = b.download(y).data();
                } catch (Throwable e) {
                    errors[rank] = e;
                }
            });
            t.start();
            threads.add(t);
        }
        for (Thread t : threads) t.join(120_000);
        double[] exact = new double[n], magnitude = new double[n];
        for (int r = 0; r < count; r++) {
            float[] x = random(10 + r, n);
            for (int i = 0; i < n; i++) {
                exact[i] += x[i];
                magnitude[i] += Math.abs(x[i]);
            }
        }
        for (int r = 0; r < count; r++) {
            assertNull(errors[r], "rank " + r + ": " + errors[r]);
            for (int i = 0; i < n; i++) {
                // NCCL sums in an order of its own: for 2 ranks one rounding of a + b (half an ulp of the result),
                // else count - 1 roundings, each at most half an ulp of a partial sum, below the sum of magnitudes
                double tol = count == 2 ? Math.ulp(results[r][i]) / 2 : (count - 1) * Math.ulp((float) magnitude[i]) / 2;
                assertEquals(exact[i], results[r][i], tol, "rank " + r + " element " + i);
            }
        }
        for (int r = 1; r < count; r++) assertTrue(Arrays.equals(results[0], results[r]), "rank " + r + " holds rank 0's sum");
        for (int r = 0; r < count; r++) assertArrayEquals(results[r], queued[r], "rank " + r + ": queued allReduce, x2 before and x0.5 after");
        System.out.println("NCCL multi-GPU: " + count + " ranks summed " + n + " values");
    }

    private static int gpuCount() {
        int[] c = new int[1];
        org.bytedeco.cuda.global.cudart.cuDeviceGetCount(c);
        return c[0];
    }
}
