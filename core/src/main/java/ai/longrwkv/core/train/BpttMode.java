package ai.longrwkv.core.train;

/** How the gradient crosses chunk boundaries. */
public enum BpttMode {
    /** Exact gradient of the whole-sequence loss: boundary states are kept, each chunk is recomputed in a reverse pass. */
    FULL,
    /** State carried forward, gradient stopped at each chunk boundary (what RWKV-infctx-trainer's fast path does). */
    TRUNCATED;

    public static BpttMode parse(String s) {
        return switch (s.toLowerCase(java.util.Locale.ROOT)) {
            case "full" -> FULL;
            case "truncated" -> TRUNCATED;
            default -> throw new IllegalArgumentException("--bptt must be 'full' or 'truncated', got '" + s + "'");
        };
    }
}
