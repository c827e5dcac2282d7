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
     * Auto runs the chunked form only for heads of at least this size. With N = 1 the chunked dw (one value, a sum of
     * terms that cancel) was measured up to 1.3e-5 from float64 where the sequential scan was 4e-7 (issue 12's note);
     * every head size from 5 up stayed within 1e-5 in the randomized tests, and x052 checkpoints have N = 64.
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
