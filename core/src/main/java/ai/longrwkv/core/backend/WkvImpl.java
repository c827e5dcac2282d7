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

    /** Whether to run the chunked form for a sequence of {@code steps} tokens; auto picks it from {@code minSteps} on. */
    public boolean chunked(int steps, int minSteps) {
        return this == CHUNKED || (this == AUTO && steps >= minSteps);
    }

    public String label() { return name().toLowerCase(Locale.ROOT); }
}
