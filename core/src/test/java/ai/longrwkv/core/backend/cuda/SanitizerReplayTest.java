package ai.longrwkv.core.backend.cuda;

import ai.longrwkv.core.backend.Tensor;
import ai.longrwkv.core.tensor.HostTensor;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;

import java.io.FileOutputStream;
import java.io.IOException;
import java.io.InputStream;
import java.io.OutputStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.Random;
import java.util.concurrent.TimeUnit;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * Every kernel of the backend under ThreadSanitizer and AddressSanitizer, with zero reports required. The emulated
 * device records the launches of one call of every backend op (the backend's own launch configurations, on small
 * shapes, plus the WKV reverse scan at T = 0, which the backend never launches but the kernel must survive), and a
 * replay tool built with -fsanitize=thread, then -fsanitize=address, re-runs them in the threads mode (one pthread
 * per CUDA thread, the kernels' modules built with the same sanitizer). ThreadSanitizer sees every unsynchronised
 * pair of accesses between the threads of a block (a missing __syncthreads); AddressSanitizer every access past a
 * buffer of exactly the recorded size, past a __shared__ array or past a local array.
 */
class SanitizerReplayTest {
    static Path recording, dir;
    static int recordedLaunches;

    @BeforeAll
    static void record() throws IOException {
        try (CudaBackend be = new CudaBackend(new EmulatedDevice(false, 1L << 30))) {
            EmulatedDevice dev = (EmulatedDevice) be.device;
            dir = dev.buildDir();
            recording = Files.createTempFile("emu-launches", ".bin");
            OutputStream out = new FileOutputStream(recording.toFile());
            dev.startRecording(out);
            recordedLaunches = everyOp(be);
            dev.stopRecording();
        }
    }

    private static Tensor rand(CudaBackend be, Random rnd, int... shape) {
        HostTensor h = HostTensor.zeros(shape);
        for (int i = 0; i < h.size(); i++) h.data()[i] = (float) rnd.nextGaussian() * 0.5f;
        return be.upload(h);
    }

    /** One call of every op; returns the number of kernel launches it made (counted from the module list below). */
    private static int everyOp(CudaBackend be) {
        Random rnd = new Random(1);
        int t = 7, c = 48;
        Tensor x = rand(be, rnd, t, c), y = rand(be, rnd, t, c), z = rand(be, rnd, t, c), v = rand(be, rnd, c), v2 = rand(be, rnd, c);
        Tensor table = rand(be, rnd, 20, c), stats = rand(be, rnd, t * 4), stats2 = rand(be, rnd, t * 4);
        int[] ids = {1, 5, 5, 19, 0, 3, 5};
        be.embedding(table, ids, x);
        be.embeddingBackward(y, ids, table);
        be.norm(x, v, v2, 1, 1e-5f, y, stats, stats2);
        be.normBackward(z, x, v, 1, stats, stats2, y, v, v2);
        be.norm(x, v, v2, 4, 1e-5f, y, stats, stats2);
        be.normBackward(z, x, v, 4, stats, stats2, y, v, v2);
        be.tokenShiftMix(x, v, v2, y);
        be.tokenShiftMixBackward(z, x, v, v2, y, v, v2);
        be.addToRow(y, 3, v);
        be.silu(x, y); be.siluBackward(x, z, y);
        be.sigmoid(x, y); be.sigmoidBackward(y, z, x);
        be.reluSquare(x, y); be.reluSquareBackward(x, z, y);
        be.mul(x, z, y); be.add(x, z, y); be.scale(y, 0.5f); be.fill(y, 1f);
        be.sumOfSquares(x);
        be.adamwStep(x, z, 0.5f, y, rand(be, rnd, t, c), 1e-3f, 0.9f, 0.99f, 1e-8f, 0.01f, 1);
        for (int[] hn : new int[][]{{6, 8}, {1, 64}}) {
            int h = hn[0], n = hn[1], steps = 5;
            Tensor r = rand(be, rnd, steps, h * n), k = rand(be, rnd, steps, h * n), vv = rand(be, rnd, steps, h * n);
            Tensor td = rand(be, rnd, h, n), w = rand(be, rnd, h, n), u = rand(be, rnd, h, n), s = rand(be, rnd, h, n, n);
            be.decay(td, w);
            be.decayBackward(td, w, u, td);
            be.wkvForward(r, k, vv, w, u, s, rand(be, rnd, steps, h * n));
            be.wkvBackward(r, k, vv, w, u, s, rand(be, rnd, steps, h * n), rand(be, rnd, h, n, n), rand(be, rnd, steps, h * n),
                    rand(be, rnd, steps, h * n), rand(be, rnd, steps, h * n), rand(be, rnd, h, n), rand(be, rnd, h, n));
            // the reverse scan at T = 0: dState must come back unchanged, with no race between its readers and writers
            Kernel reverse = new Kernel(be.device, be.device.function("wkv5", "wkv5_backward_reverse_scan_n" + n));
            reverse.launch(h, 2 * n, 0, 0, h * n, r, k, vv, w, u, r, s, r, r);
        }
        // the chunked WKV kernels through a backend that forces them: 21 steps = a full 16-token chunk and a short one
        String saved = System.getProperty(ai.longrwkv.core.backend.WkvImpl.PROPERTY);
        System.setProperty(ai.longrwkv.core.backend.WkvImpl.PROPERTY, "chunked");
        try {
            CudaBackend chunked = new CudaBackend(be.device);   // shares be's device, so it is not closed here
            for (int[] hn : new int[][]{{3, 8}, {1, 64}}) {
                int h = hn[0], n = hn[1], steps = 21;
                Tensor r = rand(chunked, rnd, steps, h * n), k = rand(chunked, rnd, steps, h * n), vv = rand(chunked, rnd, steps, h * n);
                Tensor w = rand(chunked, rnd, h, n), u = rand(chunked, rnd, h, n), s = rand(chunked, rnd, h, n, n);
                chunked.scale(w, 0.5f);
                chunked.wkvForward(r, k, vv, w, u, s, rand(chunked, rnd, steps, h * n));
                chunked.wkvBackward(r, k, vv, w, u, s, rand(chunked, rnd, steps, h * n), rand(chunked, rnd, h, n, n),
                        rand(chunked, rnd, steps, h * n), rand(chunked, rnd, steps, h * n), rand(chunked, rnd, steps, h * n),
                        rand(chunked, rnd, h, n), rand(chunked, rnd, h, n));
            }
        } finally {
            if (saved == null) System.clearProperty(ai.longrwkv.core.backend.WkvImpl.PROPERTY);
            else System.setProperty(ai.longrwkv.core.backend.WkvImpl.PROPERTY, saved);
        }
        // the tensor-core forward and backward (bf16 inputs, so launched directly: the backend's seam is fp32) and the probe;
        // the fiber mode cannot see a missing barrier between the shared-memory writes and the mma reads, TSan can
        {
            int h = 2, n = 64, steps = 21, hc = h * n;
            java.util.function.Supplier<Tensor> bf = () -> {
                HostTensor hx = HostTensor.zeros(steps, hc);
                for (int i = 0; i < hx.size(); i++) hx.data()[i] = CudaChunkedWkvTest.bf16((float) rnd.nextGaussian() * 0.5f);
                return be.upload(CudaChunkedWkvTest.packBf16(hx));
            };
            Tensor r = bf.get(), k = bf.get(), vv = bf.get(), u = bf.get(), w = rand(be, rnd, h, n), s = rand(be, rnd, h, n, n);
            be.scale(w, 0.5f);
            int tiles = CudaBackend.wkvTiles(n), blocks = h * tiles, threads = KernelSources.WKV_CHUNK_THREADS;
            int chunks = (steps + KernelSources.WKV_CHUNK_LEN - 1) / KernelSources.WKV_CHUNK_LEN;
            new Kernel(be.device, be.device.function("wkv5_chunked", CudaBackend.wkvForwardKernel(n, true)))
                    .launch(blocks, threads, 0, steps, hc, r, k, vv, w, u, s, rand(be, rnd, steps, hc));
            Tensor states = be.zeros(h, chunks, n * n);
            new Kernel(be.device, be.device.function("wkv5_chunked", "wkv5c_states_n" + n + "_bf16"))
                    .launch(blocks, threads, 0, steps, hc, k, vv, w, s, states);
            new Kernel(be.device, be.device.function("wkv5_chunked", CudaBackend.wkvBackwardKernel(n, true)))
                    .launch(blocks, threads, 0, steps, hc, r, k, vv, w, u, rand(be, rnd, steps, hc), states, rand(be, rnd, h, n, n),
                            be.zeros(steps, hc), be.zeros(tiles, steps, hc), be.zeros(tiles, steps, hc), be.zeros(tiles, hc),
                            be.zeros(tiles, hc));
            new Kernel(be.device, be.device.function("wkv5_chunked", "wkv5t_mma_probe"))
                    .launch(1, 32, 0, r, 16, 1, k, 1, 16, x, 8, 1, rand(be, rnd, 16, 8), 1, 16);
        }
        Tensor logits = rand(be, rnd, 3, 100);
        be.crossEntropy(logits, new int[]{4, -1, 99}, new float[]{1f, 1f, 0.5f}, 1e-4f, logits);
        // bf16.cu, on odd sizes (a bf16 allocation of an odd element count ends mid-word): upload (f32_to_bf16 through
        // the staging buffer), copy both ways, the embedding gather from a bf16 table, matmul's rounding of an fp32 operand
        int odd = 47;
        HostTensor host = HostTensor.zeros(21, odd);
        for (int i = 0; i < host.size(); i++) host.data()[i] = (float) rnd.nextGaussian();
        Tensor table16 = be.upload(host, ai.longrwkv.core.tensor.DType.BF16), wide = rand(be, rnd, 21, odd);
        be.copy(table16, wide);
        be.copy(wide, table16);
        Tensor rowsOut = rand(be, rnd, ids.length, odd);
        be.embedding(table16, ids, rowsOut);
        be.matmul(rowsOut, false, table16, true, rand(be, rnd, ids.length, 21), 1f, 0f);
        return -1;
    }

    static String run(List<String> cmd, Map<String, String> env) throws IOException, InterruptedException {
        ProcessBuilder pb = new ProcessBuilder(cmd).redirectErrorStream(true);
        pb.environment().putAll(env);
        Process p = pb.start();
        String out;
        try (InputStream in = p.getInputStream()) {
            out = new String(in.readAllBytes(), StandardCharsets.UTF_8);
        }
        assertTrue(p.waitFor(600, TimeUnit.SECONDS), "timed out: " + cmd);
        return "exit " + p.exitValue() + "\n" + out;
    }

    private static void replay(String sanitizer, String reportMarker, Map<String, String> env) throws Exception {
        String suffix = "-" + sanitizer;
        List<String> flags = List.of("-fsanitize=" + sanitizer, "-fno-omit-frame-pointer");
        for (String module : KernelSources.MODULES) EmulatedDevice.buildModule(dir, module, suffix, flags);
        Path replayer = dir.resolve("emu_replay" + suffix);
        Path src = dir.resolve("emu_replay.cpp");
        Files.write(src, KernelSources.read("emu/emu_replay.cpp"));
        List<String> cc = new ArrayList<>(List.of(EmulatedDevice.compiler(), "-std=c++17", "-O1", "-g"));
        cc.addAll(flags);
        cc.addAll(List.of("-o", replayer.toString(), src.toString(), "-ldl", "-pthread"));
        String built = run(cc, Map.of());
        assertTrue(built.startsWith("exit 0"), built);
        String out = run(List.of(replayer.toString(), recording.toString(), dir.toString(), suffix), env);
        System.out.println("[" + sanitizer + "] " + out.lines().filter(l -> l.startsWith("replayed") || l.contains("WARNING")
                || l.contains("ERROR")).reduce((a, b) -> a + " | " + b).orElse(out));
        assertFalse(out.contains(reportMarker), sanitizer + " reported:\n" + out);
        assertTrue(out.startsWith("exit 0"), out);
        assertTrue(out.contains("replayed "), out);
        int launches = Integer.parseInt(out.replaceAll("(?s).*replayed (\\d+) launches.*", "$1"));
        assertTrue(launches >= 30, "replayed only " + launches + " launches");
    }

    @Test
    void threadSanitizerReportsNothing() throws Exception {
        replay("thread", "WARNING: ThreadSanitizer", Map.of("TSAN_OPTIONS", "halt_on_error=1 exitcode=66 report_signal_unsafe=0"));
    }

    @Test
    void addressSanitizerReportsNothing() throws Exception {
        replay("address", "ERROR: AddressSanitizer", Map.of("ASAN_OPTIONS", "detect_leaks=0 halt_on_error=1 exitcode=67"));
    }
}
