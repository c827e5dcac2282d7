package ai.longrwkv.cli;

import ai.longrwkv.core.backend.Backend;
import ai.longrwkv.core.backend.OpProfiler;
import ai.longrwkv.core.backend.Tensor;
import ai.longrwkv.core.backend.WkvImpl;
import ai.longrwkv.core.backend.cpu.CpuBackend;
import ai.longrwkv.core.model.ModelConfig;
import ai.longrwkv.core.model.ModelInit;
import ai.longrwkv.core.model.ParamSet;
import ai.longrwkv.core.model.Precision;
import ai.longrwkv.core.model.Rwkv5Model;
import ai.longrwkv.core.model.RwkvState;
import ai.longrwkv.core.tensor.DType;
import ai.longrwkv.core.tensor.HostTensor;
import ai.longrwkv.core.train.BpttMode;
import ai.longrwkv.core.train.ChunkedBptt;
import ai.longrwkv.core.train.TokenSequence;
import ai.longrwkv.core.train.Trainer;
import ai.longrwkv.core.train.LrSchedule;
import ai.longrwkv.core.train.MemoryPlan;
import org.bytedeco.javacpp.FloatPointer;
import org.bytedeco.openblas.global.openblas;
import picocli.CommandLine;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;

import java.util.Arrays;
import java.util.Random;
import java.util.concurrent.Callable;

/** Benchmarks: medians of repeated runs, measured side by side in one process. */
@Command(name = "bench", mixinStandardHelpOptions = true,
        description = "Measure CPU throughput and memory (medians of repeated runs in one process).",
        subcommands = {BenchCommand.Matmul.class, BenchCommand.Wkv.class, BenchCommand.ModelSpeed.class, BenchCommand.Train.class, BenchCommand.Memory.class,
                TokenizerBenchCommand.class})
final class BenchCommand implements Runnable {
    @CommandLine.Spec
    CommandLine.Model.CommandSpec spec;

    @Override
    public void run() {
        spec.commandLine().usage(System.out);
    }

    static double median(double[] xs) {
        double[] s = xs.clone();
        Arrays.sort(s);
        return s.length % 2 == 1 ? s[s.length / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
    }

    /** Median GFLOP/s of c = op(a) op(b) over reps calls, after one untimed call. */
    private static double rate(Backend be, Tensor a, boolean ta, Tensor b, boolean tb, Tensor c, int reps) {
        return rate(be, a, ta, b, tb, c, 0f, reps);
    }

    /** As above with C = op(a) op(b) + beta C (a weight gradient accumulates: beta 1). */
    private static double rate(Backend be, Tensor a, boolean ta, Tensor b, boolean tb, Tensor c, float beta, int reps) {
        long flops = 2L * c.rows() * c.cols() * (ta ? a.rows() : a.cols());
        double[] g = new double[reps];
        for (int r = -1; r < reps; r++) {
            long t0 = System.nanoTime();
            be.matmul(a, ta, b, tb, c, 1f, beta);
            if (r >= 0) g[r] = (double) flops / (System.nanoTime() - t0);
        }
        return median(g);
    }

    static Tensor random(Backend be, Random rnd, DType dtype, int... shape) {
        HostTensor h = HostTensor.zeros(shape);
        for (int i = 0; i < h.size(); i++) h.data()[i] = (float) rnd.nextGaussian();
        return be.upload(h, dtype);
    }

    static Tensor random(Backend be, Random rnd, int... shape) {
        HostTensor h = HostTensor.zeros(shape);
        for (int i = 0; i < h.size(); i++) h.data()[i] = (float) rnd.nextGaussian();
        return be.upload(h);
    }

    /** Peak resident set size of this process (VmHWM), or -1 where /proc is not available. */
    static long peakRssBytes() {
        try {
            for (String line : java.nio.file.Files.readAllLines(java.nio.file.Path.of("/proc/self/status"))) {
                if (line.startsWith("VmHWM:")) return Long.parseLong(line.replaceAll("[^0-9]", "")) * 1024;
            }
        } catch (java.io.IOException | RuntimeException e) {
            return -1;
        }
        return -1;
    }

    /**
     * Says so when this JVM lacks the launcher's -XX:PerMethodTrapLimit (scripts/jvm-opts.sh explains it): without it
     * a process may compile the CPU backend's vector kernels with boxed vectors and run them several times slower for
     * its whole life, which would make any number measured here meaningless.
     */
    static void noteJitSettings() {
        boolean set = java.lang.management.ManagementFactory.getRuntimeMXBean().getInputArguments().stream()
                .anyMatch(a -> a.startsWith("-XX:PerMethodTrapLimit="));
        if (!set) {
            System.out.println("note: this JVM runs without -XX:PerMethodTrapLimit=100000 (scripts/longrwkv sets it): the CPU "
                    + "kernels may then run boxed and several times slower in some processes (see scripts/jvm-opts.sh)");
        }
    }

    @Command(name = "matmul", mixinStandardHelpOptions = true,
            description = "Backend matrix products of the model's shapes, fp32 and bf16, against raw OpenBLAS sgemm peak.")
    static final class Matmul implements Callable<Integer> {
        @Option(names = "--reps", defaultValue = "7", description = "Timed repetitions per shape; the median is reported (default: ${DEFAULT-VALUE}).") int reps;
        @Option(names = "--tokens", defaultValue = "1024", description = "Rows T of the activations, the tokens of one chunk (default: ${DEFAULT-VALUE}).") int tokens;
        @Option(names = "--embd", defaultValue = "768", description = "Model width C; the FFN width is 3.5 C (default: ${DEFAULT-VALUE}).") int embd;
        @Option(names = "--vocab", defaultValue = "65536", description = "Vocabulary size V of the head product (default: ${DEFAULT-VALUE}).") int vocab;
        @Option(names = "--head-rows", defaultValue = "0", description = "Rows S per slice of the sliced head and loss (default: the model's,"
                + " 16M / V, at most T).") int headRows;

        @Override
        public Integer call() {
            Cli.range("--reps", reps, 1, 1_000_000);
            Cli.range("--head-rows", headRows, 0, Integer.MAX_VALUE);
            Cli.range("--tokens", tokens, 1, Integer.MAX_VALUE);
            Cli.range("--embd", embd, 32, 1 << 16);
            Cli.range("--vocab", vocab, 1, 1 << 24);
            Cli.fits("--tokens x --vocab", tokens, vocab);
            Cli.fits("--tokens x 3.5 --embd", tokens, (long) (embd * 3.5));
            Random rnd = new Random(1);
            try (CpuBackend be = new CpuBackend()) {
                System.out.println("backend: " + be.name());
                // BLAS peak: a large square sgemm called directly, no backend in between
                int n = 2048;
                double peak;
                try (FloatPointer a = new FloatPointer((long) n * n); FloatPointer b = new FloatPointer((long) n * n); FloatPointer c = new FloatPointer((long) n * n)) {
                    double[] g = new double[reps];
                    for (int r = -1; r < reps; r++) {
                        long t0 = System.nanoTime();
                        openblas.cblas_sgemm(openblas.CblasRowMajor, openblas.CblasNoTrans, openblas.CblasNoTrans, n, n, n, 1f, a, n, b, n, 0f, c, n);
                        if (r >= 0) g[r] = 2.0 * n * n * n / (System.nanoTime() - t0);
                    }
                    peak = median(g);
                }
                System.out.printf("%-40s %9.1f GFLOP/s%n", "OpenBLAS sgemm 2048^3 (peak)", peak);
                double bf16Peak;
                try (Tensor a = random(be, rnd, DType.BF16, n, n); Tensor b = random(be, rnd, DType.BF16, n, n); Tensor c = be.zeros(n, n)) {
                    bf16Peak = rate(be, a, false, b, false, c, reps);
                }
                System.out.printf("%-40s %9.1f GFLOP/s  (%.2fx sgemm)%n", "backend bf16 x bf16 2048^3", bf16Peak, bf16Peak / peak);
                int T = tokens, C = embd, F = (int) (C * 3.5) / 32 * 32;
                int S = Math.min(T, headRows > 0 ? headRows : Math.max(1, Rwkv5Model.HEAD_SLICE_ELEMENTS / vocab));   // rows per slice of the sliced head
                int slices = (T + S - 1) / S;
                // the products of one layer's and the head's forward + backward in a training step, as Rwkv5Model calls
                // them (row-major C = op(A) op(B) + beta C; a weight gradient accumulates, beta 1), and how many of each
                // one step of one chunk of T tokens makes per layer (the head's: per step)
                Object[][] shapes = {
                        {"att r/k/v/g/o, ffn r   x W^T [T,C]x[C,C]^T", T, C, C, false, true, 0f, 6, false},
                        {"ffn key                x W^T [T,C]x[F,C]^T", T, C, F, false, true, 0f, 1, false},
                        {"ffn value              x W^T [T,F]x[C,F]^T", T, F, C, false, true, 0f, 1, false},
                        {"weight grads [C,C]     dy^T x [C,T]x[T,C]", C, T, C, true, false, 1f, 6, false},
                        {"ffn key weight grad    dy^T x [F,T]x[T,C]", F, T, C, true, false, 1f, 1, false},
                        {"ffn value weight grad  dy^T x [C,T]x[T,F]", C, T, F, true, false, 1f, 1, false},
                        {"input grads [C,C]      dy W [T,C]x[C,C]", T, C, C, false, false, 0f, 6, false},
                        {"ffn key input grad     dy W [T,F]x[F,C]", T, F, C, false, false, 0f, 1, false},
                        {"ffn value input grad   dy W [T,C]x[C,F]", T, C, F, false, false, 0f, 1, false},
                        {"head slice             x H^T [S,C]x[V,C]^T", S, C, vocab, false, true, 0f, slices, true},
                        {"head slice weight grad dl^T x [V,S]x[S,C]", vocab, S, C, true, false, 1f, slices, true},
                        {"head slice input grad  dl H [S,V]x[V,C]", S, vocab, C, false, false, 0f, slices, true},
                };
                System.out.printf("T = %d, C = %d, F = %d, V = %d, head slices of S = %d rows (%d per chunk)%n", T, C, F, vocab, S, slices);
                double layerFlops = 0, layerSeconds = 0, headFlops = 0, headSeconds = 0;
                for (Object[] s : shapes) {
                    int m = (int) s[1], k = (int) s[2], nn = (int) s[3];
                    boolean ta = (boolean) s[4], tb = (boolean) s[5];
                    float beta = (float) s[6];
                    int count = (int) s[7];
                    try (Tensor a = random(be, rnd, DType.F32, ta ? k : m, ta ? m : k);
                         Tensor b = random(be, rnd, DType.F32, tb ? nn : k, tb ? k : nn);
                         Tensor a16 = random(be, rnd, DType.BF16, ta ? k : m, ta ? m : k);
                         Tensor b16 = random(be, rnd, DType.BF16, tb ? nn : k, tb ? k : nn);
                         Tensor c = be.zeros(m, nn)) {
                        double med = rate(be, a, ta, b, tb, c, beta, reps), med16 = rate(be, a16, ta, b16, tb, c, beta, reps);
                        double flops = 2.0 * m * nn * k * count;
                        if ((boolean) s[8]) { headFlops += flops; headSeconds += flops / (med * 1e9); }
                        else { layerFlops += flops; layerSeconds += flops / (med * 1e9); }
                        System.out.printf("%-44s x%-2d %7.1f GFLOP/s (%3.0f%% of peak); bf16 %6.1f GFLOP/s%n", s[0], count, med, 100 * med / peak, med16);
                    }
                }
                System.out.printf("a training step's fp32 products at these rates: layers %.1f GFLOP/s, head %.1f GFLOP/s (%.0f%% / %.0f%% of peak)%n",
                        layerFlops / layerSeconds / 1e9, headFlops / headSeconds / 1e9, 100 * layerFlops / layerSeconds / 1e9 / peak,
                        100 * headFlops / headSeconds / 1e9 / peak);
            }
            return 0;
        }
    }

    @Command(name = "wkv", mixinStandardHelpOptions = true,
            description = {"The WKV recurrence alone: forward, backward and forward+backward ms of one layer's chunk, for each "
                    + "implementation side by side (the repetitions alternate between them).",
                    "--heads, --head-size and --tokens take comma lists of one shape each (a single value is used for every shape)."})
    static final class Wkv implements Callable<Integer> {
        @Option(names = "--heads", split = ",", defaultValue = "12,64", description = "Heads H per shape (default: ${DEFAULT-VALUE}).") int[] heads;
        @Option(names = "--head-size", split = ",", defaultValue = "64", description = "Head size N per shape; the state is H x N x N (default: ${DEFAULT-VALUE}).") int[] headSize;
        @Option(names = "--tokens", split = ",", defaultValue = "1024,4096", description = "Tokens T in the chunk per shape (default: ${DEFAULT-VALUE}).") int[] tokens;
        @Option(names = "--impl", split = ",", defaultValue = "sequential,chunked",
                description = "WKV implementations to compare: sequential, chunked, auto (default: ${DEFAULT-VALUE}).") String[] impl;
        @Option(names = "--reps", defaultValue = "7", description = "Timed repetitions; the median is reported (default: ${DEFAULT-VALUE}).") int reps;

        @Override
        public Integer call() {
            int shapes = Math.max(heads.length, Math.max(headSize.length, tokens.length));
            for (int[] list : new int[][]{heads, headSize, tokens}) {
                if (list.length != 1 && list.length != shapes) {
                    throw new CommandLine.ParameterException(new CommandLine(this), "--heads, --head-size and --tokens: expected lists of "
                            + shapes + " values or a single value, found " + heads.length + ", " + headSize.length + " and " + tokens.length);
                }
            }
            WkvImpl[] impls = new WkvImpl[impl.length];
            for (int i = 0; i < impl.length; i++) {
                try {
                    impls[i] = WkvImpl.parse(impl[i]);
                } catch (IllegalArgumentException e) {
                    throw new CommandLine.ParameterException(new CommandLine(this), "--impl: expected sequential, chunked or auto, found '" + impl[i] + "'");
                }
            }
            Cli.range("--reps", reps, 1, 1_000_000);
            for (int sh = 0; sh < shapes; sh++) {
                int hh = at(heads, sh), nn = at(headSize, sh), tt = at(tokens, sh);
                Cli.range("--heads", hh, 1, 4096);
                Cli.range("--head-size", nn, 1, 4096);
                Cli.range("--tokens", tt, 1, Integer.MAX_VALUE);
                Cli.fits("--tokens x --heads x --head-size", tt, (long) hh * nn);
                Cli.fits("--heads x --head-size^2", hh, (long) nn * nn);
            }
            CpuBackend[] backends = new CpuBackend[impls.length];
            String saved = System.getProperty(WkvImpl.PROPERTY);
            try {
                for (int i = 0; i < impls.length; i++) {
                    System.setProperty(WkvImpl.PROPERTY, impls[i].label());   // a backend reads it once, when created
                    backends[i] = new CpuBackend();
                }
            } finally {
                if (saved == null) System.clearProperty(WkvImpl.PROPERTY);
                else System.setProperty(WkvImpl.PROPERTY, saved);
            }
            try {
                System.out.println("backend: " + backends[0].name());
                noteJitSettings();
                System.out.printf("%-20s %-11s %12s %12s %12s %10s%n", "shape", "impl", "forward ms", "backward ms", "fwd+bwd ms", "vs first");
                for (int sh = 0; sh < shapes; sh++) measure(backends, impls, at(heads, sh), at(headSize, sh), at(tokens, sh));
            } finally {
                for (CpuBackend be : backends) if (be != null) be.close();
            }
            return 0;
        }

        private static int at(int[] list, int i) { return list.length == 1 ? list[0] : list[i]; }

        private void measure(CpuBackend[] backends, WkvImpl[] impls, int heads, int headSize, int tokens) {
            Random rnd = new Random(4);
            int c = heads * headSize;
            HostTensor[] host = {randomHost(rnd, tokens, c), randomHost(rnd, tokens, c), randomHost(rnd, tokens, c),
                    randomHost(rnd, heads, headSize), randomHost(rnd, tokens, c)};
            double[][] f = new double[impls.length][reps], b = new double[impls.length][reps], fb = new double[impls.length][reps];
            Tensor[][] ts = new Tensor[impls.length][];
            try {
                for (int i = 0; i < impls.length; i++) {
                    CpuBackend be = backends[i];
                    ts[i] = new Tensor[]{be.upload(host[0]), be.upload(host[1]), be.upload(host[2]), be.upload(host[3]),
                            be.zeros(heads, headSize), be.upload(host[4]), be.zeros(tokens, c), be.zeros(heads, headSize, headSize),
                            be.zeros(heads, headSize, headSize), be.zeros(heads, headSize, headSize), be.zeros(tokens, c),
                            be.zeros(tokens, c), be.zeros(tokens, c), be.zeros(heads, headSize), be.zeros(heads, headSize)};
                    be.fill(ts[i][4], 0.9f);
                }
                for (int rep = -1; rep < reps; rep++) {
                    for (int i = 0; i < impls.length; i++) {
                        CpuBackend be = backends[i];
                        Tensor[] t = ts[i];
                        Tensor r = t[0], k = t[1], v = t[2], u = t[3], w = t[4], dy = t[5], y = t[6], s0 = t[7], s = t[8], ds = t[9];
                        be.copy(s0, s);
                        long t0 = System.nanoTime();
                        be.wkvForward(r, k, v, w, u, s, y);
                        long t1 = System.nanoTime();
                        be.fill(ds, 0f);
                        long t2 = System.nanoTime();
                        be.wkvBackward(r, k, v, w, u, s0, dy, ds, t[10], t[11], t[12], t[13], t[14]);
                        long t3 = System.nanoTime();
                        if (rep >= 0) {
                            f[i][rep] = (t1 - t0) / 1e6;
                            b[i][rep] = (t3 - t2) / 1e6;
                            fb[i][rep] = f[i][rep] + b[i][rep];
                        }
                    }
                }
            } finally {
                for (Tensor[] t : ts) if (t != null) for (Tensor x : t) if (x != null) x.close();
            }
            String shape = "H=" + heads + " N=" + headSize + " T=" + tokens;
            for (int i = 0; i < impls.length; i++) {
                System.out.printf("%-20s %-11s %12.2f %12.2f %12.2f %9.2fx%n", shape, impls[i].label(), median(f[i]), median(b[i]),
                        median(fb[i]), median(fb[0]) / median(fb[i]));
            }
        }
    }

    static HostTensor randomHost(Random rnd, int... shape) {
        HostTensor h = HostTensor.zeros(shape);
        for (int i = 0; i < h.size(); i++) h.data()[i] = (float) rnd.nextGaussian();
        return h;
    }

    @Command(name = "model", mixinStandardHelpOptions = true,
            description = "Forward and forward+backward tokens/s of an x052 model of the given shape (random init).")
    static final class ModelSpeed implements Callable<Integer> {
        @Option(names = "--layers", defaultValue = "12", description = "Layers L (default: ${DEFAULT-VALUE}).") int layers;
        @Option(names = "--embd", defaultValue = "768", description = "Model width C (default: ${DEFAULT-VALUE}).") int embd;
        @Option(names = "--head-size", defaultValue = "64", description = "Head size N; C must be a multiple of it (default: ${DEFAULT-VALUE}).") int headSize;
        @Option(names = "--vocab", defaultValue = "65536", description = "Vocabulary size V (default: ${DEFAULT-VALUE}).") int vocab;
        @Option(names = "--tokens", defaultValue = "1024", description = "Sequence length, one chunk (default: ${DEFAULT-VALUE}).") int tokens;
        @Option(names = "--reps", defaultValue = "3", description = "Timed repetitions; the median is reported (default: ${DEFAULT-VALUE}).") int reps;
        @Option(names = "--profile", description = "Also time every backend operation and print where the time goes.") boolean profile;

        @Override
        public Integer call() {
            Cli.modelShape(layers, embd, headSize, vocab);
            Cli.range("--tokens", tokens, 1, Integer.MAX_VALUE);
            Cli.range("--reps", reps, 1, 1_000_000);
            Cli.fits("--tokens x --vocab", tokens, vocab);
            Cli.fits("--tokens x 3.5 --embd", tokens, (long) (embd * 3.5));
            ModelConfig cfg = ModelConfig.forInit(layers, embd, headSize, vocab);
            Random rnd = new Random(2);
            OpProfiler profiler = new OpProfiler();
            int[] ids = new int[tokens];
            for (int i = 0; i < tokens; i++) ids[i] = rnd.nextInt(vocab);
            TokenSequence seq = TokenSequence.nextToken(ids);
            try (CpuBackend cpu = new CpuBackend(); Backend be = profile ? profiler.wrap(cpu) : cpu;
                 Rwkv5Model m = new Rwkv5Model(be, cfg, ParamSet.upload(be, cfg, ModelInit.x052(cfg, 1)));
                 ParamSet grads = ParamSet.zeros(be, cfg); RwkvState s0 = m.newState()) {
                System.out.printf("model %s, %,d params, T=%d, backend %s%n", cfg, cfg.parameterCount(), tokens, be.name());
                noteJitSettings();
                double[] fwd = new double[reps], bwd = new double[reps];
                for (int r = -1; r < reps; r++) {
                    long t0 = System.nanoTime();
                    try (RwkvState s = s0.copy(be); var acts = m.forward(ids, s, false, true)) {
                        be.crossEntropy(acts.logits(), seq.targets(), seq.lossWeights(), 0f, null);
                    }
                    long t1 = System.nanoTime();
                    ChunkedBptt.Result res = ChunkedBptt.run(m, seq, s0, grads, new ChunkedBptt.Options(tokens, BpttMode.FULL, true), false, null);
                    long t2 = System.nanoTime();
                    res.finalState().close();
                    if (r == -1) profiler.reset();
                    if (r >= 0) {
                        fwd[r] = tokens / ((t1 - t0) / 1e9);
                        bwd[r] = tokens / ((t2 - t1) / 1e9);
                        System.out.printf("  rep %d: forward %.1f tok/s, forward+backward %.1f tok/s%n", r, fwd[r], bwd[r]);
                    }
                }
                System.out.printf("median forward %.1f tok/s, forward+backward %.1f tok/s%n", median(fwd), median(bwd));
                if (profile) {
                    System.out.println("backend time by operation over the timed repetitions (forward and forward+backward):");
                    profiler.report().forEach(line -> System.out.println("  " + line));
                }
            }
            return 0;
        }
    }

    @Command(name = "train", mixinStandardHelpOptions = true,
            description = "Tokens/s of whole training steps (forward + backward + AdamW) with the Trainer, random tokens.")
    static final class Train implements Callable<Integer> {
        @Option(names = "--layers", defaultValue = "12", description = "Layers L (default: ${DEFAULT-VALUE}).") int layers;
        @Option(names = "--embd", defaultValue = "768", description = "Model width C (default: ${DEFAULT-VALUE}).") int embd;
        @Option(names = "--head-size", defaultValue = "64", description = "Head size N; C must be a multiple of it (default: ${DEFAULT-VALUE}).") int headSize;
        @Option(names = "--vocab", defaultValue = "65536", description = "Vocabulary size V (default: ${DEFAULT-VALUE}).") int vocab;
        @Option(names = "--ctx-len", defaultValue = "1024", description = "Tokens per training sequence (default: ${DEFAULT-VALUE}).") int ctxLen;
        @Option(names = "--chunk-len", defaultValue = "1024", description = "Tokens per BPTT chunk (default: ${DEFAULT-VALUE}).") int chunkLen;
        @Option(names = "--bptt", defaultValue = "full", description = "full | truncated (default: ${DEFAULT-VALUE}).") String bptt;
        @Option(names = "--mode", defaultValue = "full", description = "full (all weights) | state (state tuning) (default: ${DEFAULT-VALUE}).") String mode;
        @Option(names = "--reps", defaultValue = "5", description = "Timed steps after one warm-up step; the median is reported (default: ${DEFAULT-VALUE}).") int reps;
        @Option(names = "--profile", description = "Also time every backend operation of the timed steps and print where the time goes.") boolean profile;
        @Option(names = "--precision", defaultValue = "fp32", paramLabel = "fp32|bf16", description = "Weight matrices in fp32, or bf16 (state: stored bf16;"
                + " full: fp32 master + bf16 working copy) (default: ${DEFAULT-VALUE}).") String precision;
        @Option(names = "--grad-cp", description = "Per-layer recomputation in backward (as finetune --grad-cp).") boolean gradCp;

        @Override
        public Integer call() {
            Cli.modelShape(layers, embd, headSize, vocab);
            DType dtype = Cli.precision(precision);
            Cli.range("--ctx-len", ctxLen, 1, Integer.MAX_VALUE);
            Cli.range("--chunk-len", chunkLen, 1, Integer.MAX_VALUE);
            Cli.range("--reps", reps, 1, 1_000_000);
            Cli.fits("--chunk-len x --vocab", Math.min(chunkLen, ctxLen), vocab);
            Cli.fits("--chunk-len x 3.5 --embd", Math.min(chunkLen, ctxLen), (long) (embd * 3.5));
            if (!mode.equals("state") && !mode.equals("full")) {
                throw new IllegalArgumentException("--mode must be 'full' or 'state', got '" + mode + "'");
            }
            BpttMode.parse(bptt);
            ModelConfig cfg = ModelConfig.forInit(layers, embd, headSize, vocab);
            Trainer.Mode m = mode.equals("state") ? Trainer.Mode.STATE : Trainer.Mode.FULL;
            Trainer.SequenceSource data = new Trainer.SequenceSource() {
                @Override public TokenSequence sequence(long index) {
                    Random rnd = new Random(index);
                    int[] ids = new int[ctxLen];
                    for (int i = 0; i < ctxLen; i++) ids[i] = rnd.nextInt(vocab);
                    return TokenSequence.nextToken(ids);
                }
                @Override public String fingerprint() { return "random"; }
            };
            OpProfiler profiler = new OpProfiler();
            try (CpuBackend cpu = new CpuBackend(); Backend be = profile ? profiler.wrap(cpu) : cpu;
                 Rwkv5Model model = new Rwkv5Model(be, cfg, ParamSet.upload(be, cfg, ModelInit.x052Lazy(cfg, 1, 0, 0, false),
                         Precision.loadDtype(dtype, m == Trainer.Mode.FULL)));
                 Trainer t = newTrainer(model, m, dtype, gradCp, new Trainer.Config(m, chunkLen, BpttMode.parse(bptt), 1, 1, reps + 1,
                         new LrSchedule(1e-4, 1e-5, 0, reps + 1, LrSchedule.Kind.COSINE), 0, 1.0, true, 0), data)) {
                System.out.printf("train step (%s, bptt %s, %s%s): model %s, %,d params, ctx %d, chunk %d, backend %s%n",
                        mode, bptt, dtype.label(), gradCp ? ", grad-cp" : "", cfg, cfg.parameterCount(), ctxLen, chunkLen, be.name());
                noteJitSettings();
                double[] tps = new double[reps];
                for (int r = -1; r < reps; r++) {
                    Trainer.StepResult res = t.trainStep();
                    if (r == -1) profiler.reset();
                    if (r >= 0) {
                        tps[r] = res.tokens() / res.seconds();
                        System.out.printf("  step %d: %.2f s, %.1f tok/s, loss %.3f%n", r, res.seconds(), tps[r], res.loss());
                    }
                }
                System.out.printf("median %.1f tok/s per training step%n", median(tps));
                MemoryPlan plan = MemoryPlan.of(new MemoryPlan.Spec(cfg, MemoryPlan.Mode.valueOf(m.name()), dtype, gradCp, ctxLen,
                        Math.min(chunkLen, ctxLen), BpttMode.parse(bptt), 0, 0));
                System.out.printf("peak tensor memory %s, plan %s (%+.1f%%); process peak RSS %s, plan %s (%+.1f%%)%n",
                        MemoryPlan.human(cpu.peakBytes()), MemoryPlan.human(plan.peakBytes()), 100.0 * (plan.peakBytes() - cpu.peakBytes()) / cpu.peakBytes(),
                        MemoryPlan.human(peakRssBytes()), MemoryPlan.human(plan.cpuProcessBytes()),
                        100.0 * (plan.cpuProcessBytes() - peakRssBytes()) / peakRssBytes());
                if (profile) {
                    System.out.println("backend time by operation over the timed steps:");
                    profiler.report().forEach(line -> System.out.println("  " + line));
                }
            }
            return 0;
        }
    }

    /** A trainer on a model set to the precision and --grad-cp as the training commands set them. */
    private static Trainer newTrainer(Rwkv5Model model, Trainer.Mode m, DType dtype, boolean gradCp, Trainer.Config cfg,
                                      Trainer.SequenceSource data) {
        Precision.configure(model, dtype, m == Trainer.Mode.FULL, gradCp);
        return new Trainer(model, cfg, data, null, java.util.Set.of());
    }

    @Command(name = "memory", mixinStandardHelpOptions = true,
            description = "Peak backend memory of FULL-mode chunked BPTT for growing sequence lengths at a fixed chunk.")
    static final class Memory implements Callable<Integer> {
        @Option(names = "--layers", defaultValue = "2", description = "Layers L (default: ${DEFAULT-VALUE}).") int layers;
        @Option(names = "--embd", defaultValue = "128", description = "Model width C (default: ${DEFAULT-VALUE}).") int embd;
        @Option(names = "--head-size", defaultValue = "64", description = "Head size N; C must be a multiple of it (default: ${DEFAULT-VALUE}).") int headSize;
        @Option(names = "--vocab", defaultValue = "256", description = "Vocabulary size V (default: ${DEFAULT-VALUE}).") int vocab;
        @Option(names = "--chunk-len", defaultValue = "512", description = "Tokens per BPTT chunk, fixed while the length grows (default: ${DEFAULT-VALUE}).") int chunk;
        @Option(names = "--lengths", defaultValue = "4096,16384,65536", split = ",", paramLabel = "T,...",
                description = "Sequence lengths measured, in tokens (default: ${DEFAULT-VALUE}).") int[] lengths;

        @Override
        public Integer call() {
            Cli.modelShape(layers, embd, headSize, vocab);
            Cli.range("--chunk-len", chunk, 1, Integer.MAX_VALUE);
            Cli.fits("--chunk-len x --vocab", chunk, vocab);
            Cli.fits("--chunk-len x 3.5 --embd", chunk, (long) (embd * 3.5));
            if (lengths.length == 0) throw new IllegalArgumentException("--lengths: give at least one length");
            for (int T : lengths) Cli.range("--lengths", T, 1, Integer.MAX_VALUE);
            ModelConfig cfg = ModelConfig.forInit(layers, embd, headSize, vocab);
            try (CpuBackend be = new CpuBackend(); Rwkv5Model m = new Rwkv5Model(be, cfg, ParamSet.upload(be, cfg, ModelInit.x052(cfg, 1)));
                 ParamSet grads = ParamSet.zeros(be, cfg); RwkvState s0 = m.newState()) {
                System.out.printf("model %s, chunk %d, FULL mode; params+grads+state %.1f MB held throughout%n",
                        cfg, chunk, be.liveBytes() / 1e6);
                System.out.printf("%8s %7s %12s %14s %20s %16s %10s%n", "T", "chunks", "peak MB", "boundary MB",
                        "peak - boundary MB", "process RSS MB", "tok/s");
                Random rnd = new Random(3);
                // warm-up so that the first row's tokens/s is not JIT compilation time
                int[] warm = new int[Math.min(4 * chunk, 4096)];
                ChunkedBptt.run(m, TokenSequence.nextToken(warm), s0, grads, new ChunkedBptt.Options(chunk, BpttMode.FULL, true), false, null)
                        .finalState().close();
                for (int T : lengths) {
                    int[] ids = new int[T];
                    for (int i = 0; i < T; i++) ids[i] = rnd.nextInt(vocab);
                    long base = be.liveBytes();
                    be.resetPeakBytes();
                    long t0 = System.nanoTime();
                    ChunkedBptt.Result r = ChunkedBptt.run(m, TokenSequence.nextToken(ids), s0, grads,
                            new ChunkedBptt.Options(chunk, BpttMode.FULL, true), false, null);
                    double secs = (System.nanoTime() - t0) / 1e9;
                    r.finalState().close();
                    long peak = be.peakBytes() - base;
                    int chunks = (T + chunk - 1) / chunk;
                    long boundary = chunks * RwkvState.bytes(cfg);
                    System.out.printf("%8d %7d %12.2f %14.2f %20.2f %16.0f %10.0f%n", T, chunks, peak / 1e6, boundary / 1e6,
                            (peak - boundary) / 1e6, peakRssBytes() / 1e6, T / secs);
                }
            }
            return 0;
        }
    }
}
