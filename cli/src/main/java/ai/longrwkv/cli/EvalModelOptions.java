package ai.longrwkv.cli;

import ai.longrwkv.core.backend.Backend;
import ai.longrwkv.core.backend.Backends;
import ai.longrwkv.core.model.ModelWeights;
import ai.longrwkv.core.model.Rwkv5Model;
import ai.longrwkv.core.model.RwkvState;
import ai.longrwkv.core.tokenizer.Tokenizer;
import ai.longrwkv.core.tokenizer.Tokenizers;
import ai.longrwkv.eval.Prefill;
import picocli.CommandLine.Option;

import java.nio.file.Path;

/**
 * The options every command that runs a model for evaluation or generation shares (picocli mixin): the model, an
 * optional tuned state, the tokenizer and the prefill chunk length.
 */
final class EvalModelOptions {
    @Option(names = "--model", required = true, description = "Model file: .pth, .safetensors or rwkv.cpp .bin.")
    Path model;

    @Option(names = "--state", paramLabel = "FILE|zeros", description = "FILE | zeros: start from the tuned state in this state file (from state-tune), or from zeros. Default: the tuned state stored in the model file (blocks.*.att.time_state) if it has one, else zeros.")
    Path state;

    @Option(names = "--tokenizer", paramLabel = "SPEC",
            description = "'world:PATH' (PATH = rwkv_vocab_v20230424.txt) or 'bytes' (default: bytes for vocab-256 models; required otherwise).")
    String tokenizer;

    @Option(names = "--chunk-len", defaultValue = "" + Prefill.DEFAULT_CHUNK_LEN,
            description = "Prefill chunk length; memory grows with this, not with the prompt length (default: ${DEFAULT-VALUE}).")
    int chunkLen;

    @Option(names = "--gn-eps", description = "ln_x GroupNorm eps (default: 1e-5 for rwkv.cpp files, else 64e-5).")
    Double gnEps;

    @Option(names = "--device", defaultValue = "cpu", description = "cpu | cuda | auto | emulated (the CUDA kernels run on the CPU, for testing) (default: ${DEFAULT-VALUE}).")
    String device;

    @Option(names = "--precision", defaultValue = "fp32", paramLabel = "fp32|bf16",
            description = "Weight matrices in fp32 or bf16 (half the memory; fp32 accumulation; states and norms stay fp32) (default: ${DEFAULT-VALUE}).")
    String precision;

    @Option(names = "--label", description = "Name of what is evaluated, in tables and chart titles (default: the model and state file names).")
    String label;

    /** A loaded model with its initial state and tokenizer; closing it frees them. */
    static final class Loaded implements AutoCloseable {
        final Backend backend;
        final Rwkv5Model model;
        final RwkvState initial;
        final Tokenizer tokenizer;
        final String label;

        private Loaded(Backend backend, Rwkv5Model model, RwkvState initial, Tokenizer tokenizer, String label) {
            this.backend = backend;
            this.model = model;
            this.initial = initial;
            this.tokenizer = tokenizer;
            this.label = label;
        }

        @Override
        public void close() {
            initial.close();
            model.close();
            backend.close();
        }
    }

    Loaded load() {
        if (chunkLen < 1) throw new IllegalArgumentException("--chunk-len must be >= 1, got " + chunkLen);
        ModelWeights w = Cli.load(model);
        Backend be = Backends.create(device);
        if (!"cpu".equalsIgnoreCase(device)) System.err.println(Backends.describe(be));
        Rwkv5Model m = null;
        RwkvState s0 = null;
        try {
            m = Rwkv5Model.load(be, w, Cli.groupNormEps(w, gnEps), Cli.precision(precision));
            Tokenizer tok = tokenizerFor(tokenizer, m.config().vocabSize());
            s0 = Cli.initialState(m, w, state);
            return new Loaded(be, m, s0, tok, label != null ? label : label(model, state));
        } catch (RuntimeException e) {
            if (s0 != null) s0.close();
            if (m != null) m.close();
            be.close();
            throw e;
        }
    }

    /** The tokenizer of a spec, checked against the model's vocabulary; bytes by default for byte-level models. */
    static Tokenizer tokenizerFor(String spec, int modelVocab) {
        if (spec == null) {
            if (modelVocab == 256) return Tokenizers.parse("bytes");
            throw new IllegalArgumentException("give --tokenizer world:PATH (the model's vocabulary has " + modelVocab
                    + " tokens; PATH = rwkv_vocab_v20230424.txt for RWKV World models)");
        }
        Tokenizer tok = Tokenizers.parse(spec);
        if (tok.vocabSize() != modelVocab) {
            throw new IllegalArgumentException("--tokenizer " + spec + " has a vocabulary of " + tok.vocabSize() + " but the model has "
                    + modelVocab + " (bytes goes with vocab 256, world:PATH with 65536)");
        }
        return tok;
    }

    /** "model.pth" or "model.pth + state.pth": how results name what was evaluated. */
    static String label(Path model, Path state) {
        return model.getFileName() + (state == null ? "" : " + " + state.getFileName());
    }
}
