package ai.longrwkv.cli;

import ai.longrwkv.core.backend.Backend;
import ai.longrwkv.core.backend.Backends;
import ai.longrwkv.core.io.ModelFiles;
import ai.longrwkv.core.io.pth.PthWriter;
import ai.longrwkv.core.model.ModelWeights;
import ai.longrwkv.core.model.ParamSet;
import ai.longrwkv.core.model.Rwkv5Model;
import ai.longrwkv.core.model.RwkvState;
import ai.longrwkv.core.tensor.HostTensor;
import ai.longrwkv.core.train.BpttMode;
import ai.longrwkv.core.train.ChunkedBptt;
import ai.longrwkv.core.train.TokenSequence;
import picocli.CommandLine;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;

import java.nio.file.Path;
import java.util.LinkedHashMap;
import java.util.Map;
import java.util.concurrent.Callable;

@Command(name = "debug", mixinStandardHelpOptions = true,
        description = "Tools for comparing this implementation with others.",
        subcommands = {DebugCommand.Dump.class})
final class DebugCommand implements Runnable {
    @CommandLine.Spec
    CommandLine.Model.CommandSpec spec;

    @Override
    public void run() {
        spec.commandLine().usage(System.out);
    }

    @Command(name = "dump", mixinStandardHelpOptions = true,
            description = {"Run forward and backward over one sequence (from a zero state, or --state) and write float32 tensors:",
                    "  logits [T,V], loss [1] (mean CE over target positions with mask 1, no L2Wrap),",
                    "  grad.<param key> (every parameter, its own shape),",
                    "  grad.state.<l>.att_x [C], grad.state.<l>.ffn_x [C], grad.state.<l>.wkv [H,N(key),N(value)]",
                    "    (gradient w.r.t. the initial state),",
                    "  state.<l>.att_x, state.<l>.ffn_x, state.<l>.wkv (final state, same layouts)."})
    static final class Dump implements Callable<Integer> {
        @Option(names = "--model", required = true, description = "Model file: .pth, .safetensors or rwkv.cpp .bin.") Path model;
        @Option(names = "--tokens", required = true, description = "Comma-separated input token ids.") String tokens;
        @Option(names = "--targets", description = "Comma-separated targets, -1 = none (default: next token; the last position has none).") String targets;
        @Option(names = "--mask", description = "Comma-separated 0/1 loss mask (default: all 1).") String mask;
        @Option(names = "--chunk-len", description = "Tokens per chunk (default: the whole sequence).") Integer chunkLen;
        @Option(names = "--bptt", defaultValue = "full", description = "full | truncated (default: ${DEFAULT-VALUE}).") String bptt;
        @Option(names = "--device", defaultValue = "cpu", description = "cpu | cuda | auto | emulated (the CUDA kernels run on the CPU, for testing) (default: ${DEFAULT-VALUE}).")
        String device;

        @Option(names = "--state", paramLabel = "FILE|zeros", description = "FILE | zeros: start from the tuned state in this state file (from state-tune), or from zeros. Default: the tuned state stored in the model file (blocks.*.att.time_state) if it has one, else zeros.")
        Path state;

        @Option(names = "--gn-eps", description = "ln_x GroupNorm eps (default: 1e-5 for rwkv.cpp files, else 64e-5).") Double gnEps;
        @Option(names = "--out", required = true, description = "Output file: .safetensors, or .pth / .pt (float32), by extension; written atomically.") Path out;

        @Override
        public Integer call() {
            ModelFiles.outputFormat(out, "--out");   // refuse a name that says neither .safetensors nor .pth before any work
            if (chunkLen != null && chunkLen < 1) throw new IllegalArgumentException("--chunk-len " + chunkLen + ": expected a chunk length >= 1");
            if (tokens.isBlank()) throw new IllegalArgumentException("--tokens is empty: give comma-separated token ids such as 1,2,3");
            BpttMode mode = BpttMode.parse(bptt);
            int[] ids = Cli.parseInts("--tokens", tokens);
            TokenSequence next = TokenSequence.nextToken(ids);
            int[] tgt = targets == null ? next.targets() : Cli.parseInts("--targets", targets);
            if (tgt.length != ids.length) throw new IllegalArgumentException("--targets has " + tgt.length + " values but --tokens has " + ids.length);
            float[] m = mask == null ? next.mask() : Cli.parseMask("--mask", mask, ids.length);
            TokenSequence seq = new TokenSequence(ids, tgt, m);
            ModelWeights w = Cli.load(model);
            try (Backend be = Backends.create(device); Rwkv5Model rm = Rwkv5Model.load(be, w, Cli.groupNormEps(w, gnEps));
                 RwkvState s0 = Cli.initialState(rm, w, state); ParamSet grads = ParamSet.zeros(be, rm.config())) {
                int v = rm.config().vocabSize();
                float[] logits = new float[ids.length * v];
                int c = chunkLen == null ? ids.length : chunkLen;
                ChunkedBptt.Result r = ChunkedBptt.run(rm, seq, s0, grads, new ChunkedBptt.Options(c, mode, false), true,
                        (start, l) -> System.arraycopy(l.data(), 0, logits, start * v, l.size()));
                Map<String, HostTensor> outT = new LinkedHashMap<>();
                outT.put("logits", new HostTensor(new int[]{ids.length, v}, logits));
                outT.put("loss", new HostTensor(new int[]{1}, new float[]{(float) r.loss()}));
                for (String k : grads.keys()) outT.put("grad." + k, be.download(grads.get(k)));
                outT.putAll(r.initialStateGrad().toHost(be, "grad.state."));
                outT.putAll(r.finalState().toHost(be, "state."));
                r.finalState().close();
                r.initialStateGrad().close();
                ModelFiles.writeTensors(out, "--out", outT, PthWriter.Dtype.FP32, Map.of("model", model.toString(), "bptt", mode.name().toLowerCase(),
                        "chunk_len", Integer.toString(c), "ln_x_eps", Double.toString(rm.config().groupNormEps())));
                System.out.printf("wrote %s: %d tensors, loss %.6f over %d positions (%s, chunk %d)%n",
                        out, outT.size(), r.loss(), r.lossPositions(), mode.name().toLowerCase(), c);
            }
            return 0;
        }
    }
}
