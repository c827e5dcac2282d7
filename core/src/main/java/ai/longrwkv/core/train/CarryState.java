package ai.longrwkv.core.train;

/**
 * State passing between consecutive training sequences (Buitrago and Gu 2025: each sequence starts from the final
 * state of the one before it, so that the model learns from states like those it meets far beyond the training
 * length).
 */
public enum CarryState {
    /** Every sequence starts from the initial state (zeros, or the tuned state). */
    OFF,
    /** Sequence i + 1 starts from the final state of sequence i; no gradient crosses the boundary. */
    STOP,
    /**
     * As STOP, and within an optimizer step the gradient of sequence i + 1's loss flows back through its initial state
     * into sequence i (exact BPTT over the step's sequences); across steps it is stopped, as the weights change there.
     */
    FLOW;

    public static CarryState parse(String s) {
        return switch (s.strip().toLowerCase(java.util.Locale.ROOT)) {
            case "off" -> OFF;
            case "stop" -> STOP;
            case "flow" -> FLOW;
            default -> throw new IllegalArgumentException("--carry-state must be off, stop or flow, got '" + s + "'");
        };
    }

    public String cliName() {
        return name().toLowerCase(java.util.Locale.ROOT);
    }
}
