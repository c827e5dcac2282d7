package ai.longrwkv.core.backend;

import java.util.Locale;

/**
 * Which form of the WKV recurrence a backend runs: the token-by-token scan (the reference), the chunked form (a few
 * small matrix products per chunk, only the state passed between chunks), or the backend's choice by shape.
 * Both backends read {@code -Dlongrwkv.wkv=sequential|chunked|auto} (default auto) when they are created, so tests and
 * benchmarks can force either.
 */
public enum WkvImpl {
    SEQUENTIAL, CHUNKED, AUTO;

    public static final String PROPERTY = "longrwkv.wkv";

    /** The value of {@value #PROPERTY} (auto when unset). */
    public static WkvImpl fromProperty() {
        return parse(System.getProperty(PROPERTY, "auto"));
    }

    public static WkvImpl parse(String s) {
        try {
            return valueOf(s.trim().toUpperCase(Locale.ROOT));
        } catch (IllegalArgumentException e) {
            throw new IllegalArgumentException("-D" + PROPERTY + ": expected sequential, chunked or auto, found '" + s + "'");
        }
    }

    /**
     * Auto runs the chunked form only for heads of at least this size: its speed is measured at N = 64 (what x052
     * checkpoints have), not for tiny heads. Not an accuracy limit: the N = 1 dw once seen 1.3e-5 from float64 (where
     * the sequential scan was 4e-7) is an ill-conditioned value, -0.11 from terms of magnitude 207, on which the chunked
     * form was 0.12 fp32 units of that magnitude off; over 3000 random N = 1 cases the sequential scan was up to 2.3
     * such units off and the chunked form up to 0.7 (WkvChunkedCpuTest now covers N = 1 with that criterion).
     */
    public static final int AUTO_MIN_HEAD_SIZE = 8;

    /**
     * Whether to run the chunked form for {@code steps} tokens of heads of size {@code headSize}; auto picks it from
     * {@code minSteps} on, for heads of at least {@link #AUTO_MIN_HEAD_SIZE}.
     */
    public boolean chunked(int steps, int headSize, int minSteps) {
        return this == CHUNKED || (this == AUTO && steps >= minSteps && headSize >= AUTO_MIN_HEAD_SIZE);
    }

    public String label() { return name().toLowerCase(Locale.ROOT); }
}
