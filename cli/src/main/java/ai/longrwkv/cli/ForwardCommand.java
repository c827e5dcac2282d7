package ai.longrwkv.cli;

import ai.longrwkv.core.backend.Backend;
import ai.longrwkv.core.backend.Backends;
import ai.longrwkv.core.model.ModelWeights;
import ai.longrwkv.core.model.Rwkv5Model;
import ai.longrwkv.core.model.RwkvState;
import ai.longrwkv.core.train.BpttMode;
import ai.longrwkv.core.train.ChunkedBptt;
import ai.longrwkv.core.train.TokenSequence;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;

import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.util.concurrent.Callable;

/** Runs a model over a text or token list and shows what it predicts at each position. */
@Command(name = "forward", mixinStandardHelpOptions = true,
        description = "Run a model over token ids or a text (encoded with --tokenizer); print the top next-token predictions "
                + "at each position and the mean loss. The input is processed in chunks with the state carried.")
final class ForwardCommand implements Callable<Integer> {
    @Option(names = "--model", required = true, description = "Model file: .pth, .safetensors or rwkv.cpp .bin.")
    Path model;

    @Option(names = "--text", description = "Input text, encoded with --tokenizer.")
    String text;

    @Option(names = "--tokenizer", paramLabel = "SPEC",
            description = "For --text: 'world:PATH' (PATH = rwkv_vocab_v20230424.txt) or 'bytes' (default: bytes for vocab-256 models; required otherwise).")
    String tokenizer;

    @Option(names = "--tokens", description = "Comma-separated token ids.")
    String tokens;

    @Option(names = "--top", defaultValue = "3", description = "Predictions shown per position (default: ${DEFAULT-VALUE}).")
    int top;

    @Option(names = "--chunk-len", defaultValue = "1024", description = "Tokens per chunk (default: ${DEFAULT-VALUE}).")
    int chunkLen;

    @Option(names = "--device", defaultValue = "cpu", description = "cpu | cuda | auto | emulated (the CUDA kernels run on the CPU, for testing) (default: ${DEFAULT-VALUE}).")
    String device;

    @Option(names = "--state", paramLabel = "FILE|zeros", description = "FILE | zeros: start from the tuned state in this state file (from state-tune), or from zeros. Default: the tuned state stored in the model file (blocks.*.att.time_state) if it has one, else zeros.")
    Path state;

    @Option(names = "--precision", defaultValue = "fp32", paramLabel = "fp32|bf16",
            description = "Weight matrices in fp32 or bf16 (half the memory; fp32 accumulation; states and norms stay fp32) (default: ${DEFAULT-VALUE}).")
    String precision;

    @Option(names = "--gn-eps", description = "ln_x GroupNorm eps (default: 1e-5 for rwkv.cpp files, else 64e-5).")
    Double gnEps;

    @Override
    public Integer call() {
        if ((text == null) == (tokens == null)) throw new IllegalArgumentException("give exactly one of --text or --tokens");
        if (text != null && text.isEmpty()) throw new IllegalArgumentException("--text is empty: give at least one character to run the model on");
        if (tokens != null && tokens.isBlank()) throw new IllegalArgumentException("--tokens is empty: give comma-separated token ids such as 1,2,3");
        if (tokenizer != null && text == null) throw new IllegalArgumentException("--tokenizer applies to --text; --tokens are ids already");
        if (top < 0) throw new IllegalArgumentException("--top " + top + ": expected the number of predictions to show per position (>= 0)");
        if (chunkLen < 1) throw new IllegalArgumentException("--chunk-len " + chunkLen + ": expected a chunk length >= 1");
        int[] given = tokens != null ? Cli.parseInts("--tokens", tokens) : null;
        if (given != null) {
            for (int i = 0; i < given.length; i++) {
                if (given[i] < 0) throw new IllegalArgumentException("--tokens: '" + given[i] + "' at position " + i + " is not a token id (ids are >= 0)");
            }
        }
        ModelWeights w = Cli.load(model);
        double eps = Cli.groupNormEps(w, gnEps);
        try (Backend be = Backends.create(device); Rwkv5Model m = Rwkv5Model.load(be, w, eps, Cli.precision(precision));
             RwkvState s0 = Cli.initialState(m, w, state)) {
            int v = m.config().vocabSize();
            int[] ids;
            if (text != null) {
                ids = EvalModelOptions.tokenizerFor(tokenizer, v).encode(text);
                if (ids.length == 0) throw new IllegalArgumentException("--text gives no tokens");
            } else {
                ids = given;
            }
            for (int i = 0; i < ids.length; i++) {
                if (ids[i] >= v) {
                    throw new IllegalArgumentException("--tokens: token " + ids[i] + " at position " + i + " is outside the vocabulary of "
                            + model + " (ids 0.." + (v - 1) + ")");
                }
            }
            System.out.println("model " + model + ": " + m.config() + ", " + String.format("%,d", m.config().parameterCount()) + " parameters");
            TokenSequence seq = TokenSequence.nextToken(ids);
            float[][] rows = new float[ids.length][];
            ChunkedBptt.Result r = ChunkedBptt.run(m, seq, s0, null, new ChunkedBptt.Options(chunkLen, BpttMode.FULL, false), false,
                    (start, logits) -> {
                        for (int t = 0; t < logits.dim(0); t++) {
                            rows[start + t] = java.util.Arrays.copyOfRange(logits.data(), t * v, (t + 1) * v);
                        }
                    });
            r.finalState().close();
            for (int t = 0; t < ids.length; t++) {
                StringBuilder sb = new StringBuilder(String.format("%5d  %-8s ->", t, show(ids[t], v)));
                for (int idx : topK(rows[t], top)) sb.append(String.format("  %s %.3f", show(idx, v), rows[t][idx]));
                System.out.println(sb);
            }
            if (seq.lossPositions() > 0) {
                System.out.printf("mean loss over %d positions: %.6f nats%n", seq.lossPositions(), r.loss());
            }
        }
        return 0;
    }

    private static String show(int id, int vocab) {
        if (vocab != 256) return Integer.toString(id);
        if (id >= 32 && id < 127) return "'" + (char) id + "'";
        return String.format("0x%02x", id);
    }

    static int[] topK(float[] row, int k) {
        k = Math.min(k, row.length);
        int[] best = new int[k];
        java.util.Arrays.fill(best, -1);
        for (int i = 0; i < row.length; i++) {
            for (int j = 0; j < k; j++) {
                if (best[j] < 0 || row[i] > row[best[j]]) {
                    System.arraycopy(best, j, best, j + 1, k - j - 1);
                    best[j] = i;
                    break;
                }
            }
        }
        return best;
    }
}
