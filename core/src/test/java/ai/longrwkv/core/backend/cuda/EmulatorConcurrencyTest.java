package ai.longrwkv.core.backend.cuda;

import ai.longrwkv.core.backend.Tensor;
import ai.longrwkv.core.tensor.HostTensor;
import org.junit.jupiter.api.Test;

import java.util.ArrayList;
import java.util.List;
import java.util.Random;
import java.util.concurrent.CyclicBarrier;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;

import static org.junit.jupiter.api.Assertions.*;

/**
 * Several emulated devices in one process, each driven by its own Java thread at the same time (how the emulated
 * multi-rank tests run one rank per thread). The kernels' {@code __shared__} arrays and the launch configuration are
 * statics of each module's library, which the dlopen of one path shares between all devices of the process; the
 * device serialises launches of one module across devices, so concurrent ranks give exactly the results of a lone
 * device. Checked on the kernels that use shared memory (the block reductions of sumOfSquares and norm) and on
 * gridDim-dependent grid-stride kernels and GEMM, with differently sized inputs per thread so that a shared launch
 * configuration or shared scratch would show.
 */
class EmulatorConcurrencyTest {

    private static HostTensor random(Random rnd, int... shape) {
        HostTensor h = HostTensor.zeros(shape);
        float[] d = h.data();
        for (int i = 0; i < d.length; i++) d[i] = (float) rnd.nextGaussian();
        return h;
    }

    /** What one rank computes: sums of squares (a shared-memory reduction) and a group norm, many times. */
    private static List<Object> work(CudaBackend b, int seed, int rounds, CyclicBarrier start) throws Exception {
        Random rnd = new Random(seed);
        int rows = 3 + seed, cols = 64 * (1 + seed % 3);
        HostTensor x = random(rnd, rows, cols), w = random(rnd, cols), bias = random(rnd, cols);
        List<Object> out = new ArrayList<>();
        try (Tensor tx = b.upload(x); Tensor tw = b.upload(w); Tensor tb = b.upload(bias);
             Tensor y = b.zeros(rows, cols); Tensor mean = b.zeros(rows * 2); Tensor rstd = b.zeros(rows * 2);
             Tensor gram = b.zeros(rows, rows)) {
            if (start != null) start.await();
            for (int r = 0; r < rounds; r++) {
                out.add(b.sumOfSquares(tx));
                b.norm(tx, tw, tb, 2, 1e-5f, y, mean, rstd);
                b.scale(tx, 1.0f);   // grid-stride over gridDim: a launch configuration shared across threads breaks it
                out.add(b.download(y).data().clone());
                b.matmul(tx, false, tx, true, gram, 1f, 0f);   // OpenBLAS from several threads at once
                out.add(b.download(gram).data().clone());
            }
        }
        return out;
    }

    @Test
    void concurrentDevicesMatchALoneDevice() throws Exception {
        int ranks = 3, rounds = 30;
        List<List<Object>> expected = new ArrayList<>();
        for (int r = 0; r < ranks; r++) {
            try (CudaBackend b = CudaBackend.emulated()) {
                expected.add(work(b, r, rounds, null));
            }
        }
        ExecutorService pool = Executors.newFixedThreadPool(ranks);
        CyclicBarrier start = new CyclicBarrier(ranks);
        try {
            List<Future<List<Object>>> got = new ArrayList<>();
            for (int r = 0; r < ranks; r++) {
                int seed = r;
                got.add(pool.submit(() -> {
                    try (CudaBackend b = CudaBackend.emulated()) {
                        return work(b, seed, rounds, start);
                    }
                }));
            }
            for (int r = 0; r < ranks; r++) {
                List<Object> g = got.get(r).get(), e = expected.get(r);
                assertEquals(e.size(), g.size());
                for (int i = 0; i < e.size(); i++) {
                    if (e.get(i) instanceof Double d) assertEquals(d, (Double) g.get(i), "rank " + r + " item " + i);
                    else assertArrayEquals((float[]) e.get(i), (float[]) g.get(i), "rank " + r + " item " + i);
                }
            }
        } finally {
            pool.shutdownNow();
        }
    }
}
