package ai.longrwkv.datasets.pack;

import java.util.Locale;

/**
 * What the trainer does with the RNN state where a packed sequence moves from one document to the next.
 * <ul>
 * <li>{@link #CARRY}: nothing; the state runs on across the token 0 that ends each document, as RWKV-LM (windows
 * across documents) and the infctx trainer do. The model sees states left by long, unrelated text and learns that
 * token 0 means "a new document starts": the state passing that helps recurrent models generalise to long
 * contexts.</li>
 * <li>{@link #RESET}: the state goes back to the initial state (zeros, or the tuned state) before the first token of
 * every document in the sequence, so each document is trained as if alone.</li>
 * </ul>
 */
public enum BoundaryMode {
    CARRY, RESET;

    public String cliName() {
        return name().toLowerCase(Locale.ROOT);
    }

    public static BoundaryMode parse(String s) {
        for (BoundaryMode m : values()) if (m.cliName().equalsIgnoreCase(s.strip())) return m;
        throw new IllegalArgumentException("unknown document-boundary mode '" + s + "': expected carry or reset");
    }
}
