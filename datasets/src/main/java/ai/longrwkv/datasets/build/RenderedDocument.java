package ai.longrwkv.datasets.build;

import ai.longrwkv.core.tokenizer.Tokenizer;
import ai.longrwkv.datasets.io.ByteList;
import ai.longrwkv.datasets.io.IntList;
import ai.longrwkv.datasets.io.Utf8;

import java.util.ArrayList;
import java.util.Collections;
import java.util.List;

/**
 * A document as it will be trained on: text pieces, each trained or not, and whether the end-of-text token 0 that
 * follows the document is trained. Adjacent pieces with the same flag are merged, and each merged run is tokenized
 * on its own: so a token never straddles a trained and an untrained part, and the mask is exact.
 */
public final class RenderedDocument {
    /** One run of text and its loss flag. */
    public record Piece(String text, boolean trained) { }

    private final List<Piece> pieces = new ArrayList<>();
    private boolean endTrained;

    /** Appends text; an empty string is ignored. */
    public RenderedDocument add(String text, boolean trained) {
        if (text.isEmpty()) return this;
        int last = pieces.size() - 1;
        if (last >= 0 && pieces.get(last).trained() == trained) {
            pieces.set(last, new Piece(pieces.get(last).text() + text, trained));
        } else {
            pieces.add(new Piece(text, trained));
        }
        return this;
    }

    public RenderedDocument endTrained(boolean trained) {
        this.endTrained = trained;
        return this;
    }

    public List<Piece> pieces() {
        return Collections.unmodifiableList(pieces);
    }

    public boolean endTrained() {
        return endTrained;
    }

    /** The whole text (without the end-of-text token). */
    public String text() {
        StringBuilder sb = new StringBuilder();
        for (Piece p : pieces) sb.append(p.text());
        return sb.toString();
    }

    /** One character per UTF-16 unit of text(): '1' trained, '0' not. For tests and `data stats`. */
    public String charMask() {
        StringBuilder sb = new StringBuilder();
        for (Piece p : pieces) sb.append(String.valueOf(p.trained() ? '1' : '0').repeat(p.text().length()));
        return sb.toString();
    }

    /** Tokenizes the runs, appends token 0 with its flag; the result goes to tokens/flags. */
    public void encode(Tokenizer tokenizer, IntList tokens, ByteList flags) {
        for (Piece p : pieces) {
            int[] ids = tokenizer.encode(Utf8.encode(p.text(), "the text"));
            tokens.addAll(ids);
            flags.fill(p.trained() ? (byte) 1 : (byte) 0, ids.length);
        }
        tokens.add(Tokenizer.END_OF_TEXT);
        flags.add(endTrained ? (byte) 1 : (byte) 0);
    }

    /** The document's tokens, token 0 at the end, and one flag per token. */
    public Encoded encode(Tokenizer tokenizer) {
        IntList t = new IntList();
        ByteList f = new ByteList();
        encode(tokenizer, t, f);
        return new Encoded(t.toArray(), f.toArray());
    }

    /** Tokens and their loss flags. */
    public record Encoded(int[] tokens, byte[] flags) { }

    @Override
    public String toString() {
        return pieces + " end " + (endTrained ? "trained" : "masked");
    }
}
