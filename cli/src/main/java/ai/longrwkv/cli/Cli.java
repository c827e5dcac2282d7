package ai.longrwkv.cli;

import ai.longrwkv.core.io.ModelFiles;
import ai.longrwkv.core.model.ModelWeights;

import java.nio.file.Path;

/** Small helpers shared by the commands. */
final class Cli {
    private Cli() { }

    /** Fails with "OPTION must be from MIN to MAX, got V" unless min <= value <= max. */
    static void range(String option, long value, long min, long max) {
        if (value < min || value > max) {
            throw new IllegalArgumentException(option + " must be " + (max == Long.MAX_VALUE || max == Integer.MAX_VALUE
                    ? "at least " + min : "from " + min + " to " + max) + ", got " + value);
        }
    }

    /** Fails unless the model shape options make an x052 model: positive, C a multiple of the head size. */
    static void modelShape(int layers, int embd, int headSize, int vocab) {
        range("--layers", layers, 1, 1024);
        range("--head-size", headSize, 1, 4096);
        range("--embd", embd, 1, 1 << 16);
        range("--vocab", vocab, 1, 1 << 24);
        if (embd % headSize != 0) {
            throw new IllegalArgumentException("--embd " + embd + " must be a multiple of --head-size " + headSize);
        }
    }

    /** Fails unless a tensor of rows x cols floats fits in one array (2^31 - 1 elements). */
    static void fits(String what, long rows, long cols) {
        if (rows * cols > Integer.MAX_VALUE) {
            throw new IllegalArgumentException(what + ": " + rows + " x " + cols + " = " + rows * cols
                    + " elements is more than one tensor holds (2^31 - 1); use smaller sizes");
        }
    }

    /** Parses "1,2,3" (spaces allowed); the option name and position appear in any error. */
    static int[] parseInts(String option, String list) {
        String[] parts = list.trim().split("\\s*,\\s*|\\s+", -1);
        int[] out = new int[parts.length];
        for (int i = 0; i < parts.length; i++) {
            if (parts[i].isEmpty()) {
                throw new IllegalArgumentException(option + ": empty entry at position " + i + " in '" + list
                        + "'; expected integers separated by commas (or spaces)");
            }
            try {
                out[i] = Integer.parseInt(parts[i]);
            } catch (NumberFormatException e) {
                throw new IllegalArgumentException(option + ": '" + parts[i] + "' at position " + i + " is not an integer");
            }
        }
        return out;
    }

    static float[] parseMask(String option, String list, int expectedLength) {
        int[] v = parseInts(option, list);
        if (v.length != expectedLength) {
            throw new IllegalArgumentException(option + " has " + v.length + " values but --tokens has " + expectedLength);
        }
        float[] out = new float[v.length];
        for (int i = 0; i < v.length; i++) {
            if (v[i] != 0 && v[i] != 1) throw new IllegalArgumentException(option + ": value " + v[i] + " at position " + i + " must be 0 or 1");
            out[i] = v[i];
        }
        return out;
    }

    /** Loads a model file and picks the ln_x eps: the user's, else the file format's, else the official 64e-5. */
    static ModelWeights load(Path file) {
        return ModelFiles.load(file);
    }

    /** What --state says to use instead of the model file's own tuned state: nothing at all. */
    static final String ZERO_STATE = "zeros";

    /** The initial state: zeros, or the tuned state of a state file (--state). */
    static ai.longrwkv.core.model.RwkvState initialState(ai.longrwkv.core.model.Rwkv5Model m, Path stateFile) {
        if (stateFile == null || stateFile.toString().equals(ZERO_STATE)) return m.newState();
        return ai.longrwkv.core.train.StateFile.initialState(m.backend(), m.config(), ai.longrwkv.core.train.StateFile.load(stateFile, m.config()));
    }

    /**
     * The initial state for a model file: --state FILE loads a state file, --state zeros starts from zeros, and
     * without --state a tuned state stored in the model file itself (blocks.N.att.time_state, as state-tune
     * --merge-into writes and the rwkv pip package uses) is used, saying so on stderr.
     */
    static ai.longrwkv.core.model.RwkvState initialState(ai.longrwkv.core.model.Rwkv5Model m, ModelWeights w, Path stateFile) {
        if (stateFile != null) return initialState(m, stateFile);
        ai.longrwkv.core.tensor.HostTensor[] stored = ai.longrwkv.core.train.StateFile.fromModel(w, m.config());
        if (stored == null) return m.newState();
        System.err.println("using the tuned state stored in " + w.source() + " (blocks.*.att.time_state); --state zeros starts from zeros instead");
        return ai.longrwkv.core.train.StateFile.initialState(m.backend(), m.config(), stored);
    }

    /** The ln_x eps: the user's (--gn-eps, which must be a positive finite number), else the file's, else 64e-5. */
    static double groupNormEps(ModelWeights w, Double userEps) {
        if (userEps != null && !(userEps > 0 && Double.isFinite(userEps))) {
            throw new IllegalArgumentException("--gn-eps " + userEps + ": expected a positive finite number (64e-5 for official "
                    + "checkpoints, 1e-5 for rwkv.cpp files)");
        }
        return userEps != null ? userEps : ModelFiles.defaultGroupNormEps(w);
    }

    /** --precision fp32|bf16 as a dtype, with the option named in the error. */
    static ai.longrwkv.core.tensor.DType precision(String value) {
        return ai.longrwkv.core.tensor.DType.parseOption("--precision", value == null ? "fp32" : value);
    }
}
